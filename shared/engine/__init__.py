"""The engine every project runs on: the front door (config, setup, train or evaluate, launch), device
choice, atomic checkpoints and :class:`GenericTrainer` for models that are not detectors."""
from shared.engine.checkpoint import (
    AtomicCheckpointing,
    AtomicCheckpointMixin,
    AtomicDetectionCheckpointer,
    atomic_write_bytes,
    make_atomic,
)
from shared.engine.defaults import (
    build_cfg,
    default_argument_parser,
    launch_from_args,
    setup,
    train_or_evaluate,
)
from shared.engine.device import default_device, resolve_device
from shared.engine.run import (
    DetectionRunPredictor,
    RunInfo,
    detection_metadata,
    load_run,
    register_run_loader,
    run_config,
    write_run_info,
)
from shared.engine.trainer import GenericTrainer
from shared.engine.validation import ConfigValueError, config_check
from shared.datasets.readers import install_reader_hooks

install_reader_hooks()  # detectron2 / pycocotools readers name a truncated image or malformed json

import shared.weights  # noqa: E402,F401  (weights:// in every PathManager)

__all__ = [
    "AtomicCheckpointMixin",
    "AtomicCheckpointing",
    "AtomicDetectionCheckpointer",
    "ConfigValueError",
    "DetectionRunPredictor",
    "GenericTrainer",
    "RunInfo",
    "atomic_write_bytes",
    "build_cfg",
    "config_check",
    "default_argument_parser",
    "default_device",
    "detection_metadata",
    "launch_from_args",
    "load_run",
    "make_atomic",
    "register_run_loader",
    "resolve_device",
    "run_config",
    "setup",
    "train_or_evaluate",
    "write_run_info",
]
