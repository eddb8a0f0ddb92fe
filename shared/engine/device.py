"""Device selection: CUDA when available, CPU otherwise (fastreid and detectron2 default to CUDA)."""
import torch


def default_device() -> str:
    """``"cuda"`` if a CUDA device is usable, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(requested: str) -> str:
    """Map a configured ``MODEL.DEVICE`` to one that exists here.

    ``"auto"`` (or an empty string) picks :func:`default_device`. A CUDA device requested on a machine
    without CUDA raises a ``RuntimeError`` that says how to run on the CPU instead of failing deep
    inside the first ``.cuda()`` call.
    """
    requested = (requested or "auto").strip()
    if requested == "auto":
        return default_device()
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"MODEL.DEVICE={requested!r} but no CUDA device is available; "
            "pass `MODEL.DEVICE cpu` (or `auto`) to run on the CPU"
        )
    return requested
