"""Training-loop helpers shared by every project: device choice, atomic checkpoints."""
from shared.engine.checkpoint import AtomicCheckpointMixin, AtomicDetectionCheckpointer, atomic_write_bytes
from shared.engine.device import default_device, resolve_device
from shared.engine.trainer import launch_from_args

__all__ = [
    "AtomicCheckpointMixin",
    "AtomicDetectionCheckpointer",
    "atomic_write_bytes",
    "default_device",
    "launch_from_args",
    "resolve_device",
]
