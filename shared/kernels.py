"""Loading of the optional compiled extension ``shared._box_ops`` and thin wrappers around its ops.

The extension registers the ``torch.ops.shared_box_ops`` custom ops (CPU kernels, plus CUDA kernels when it
was compiled with nvcc). If it is missing or does not load, one warning line is logged and callers use the
pure-PyTorch implementations. ``SHARED_BOX_OPS_DISABLE=1`` forces the fallback.

CPU targets: the CPU row loops are compiled for several instruction sets ("default" = x86-64 baseline,
"avx2", "avx2+fma"; only "default" elsewhere) and the best one this CPU supports is used. Tests and
benchmarks run each one with :func:`use_cpu_target`; ``SHARED_BOX_OPS_CPU_TARGET=<name>`` forces one for
the whole process.
"""
from __future__ import annotations

import importlib
import logging
import contextlib
import os
from typing import Iterator, List, Optional, Tuple

import torch
from torch import Tensor

logger = logging.getLogger("shared.kernels")

#: kind name -> id of the ``kind`` argument of the compiled ops (shared/csrc/box_similarity.h, enum Kind).
KERNEL_KIND_IDS = {"iou": 0, "giou": 1, "diou": 2, "ciou": 3, "nwd": 4, "dotd": 5, "simd": 6}
#: kinds ``batched_similarity_nms`` supports (kernel and reference).
NMS_KINDS = ("iou", "diou", "nwd", "dotd", "simd")

#: environment variable that forces one CPU target of the compiled row loops
CPU_TARGET_ENV = "SHARED_BOX_OPS_CPU_TARGET"

_STATE: Optional[Tuple[object, Optional[str]]] = None


def _load() -> Tuple[object, Optional[str]]:
    """(module or None, reason it is unavailable or None); loads once and logs one line on failure."""
    global _STATE
    if _STATE is None:
        module, reason = None, None
        if os.environ.get("SHARED_BOX_OPS_DISABLE") == "1":
            reason = "disabled by SHARED_BOX_OPS_DISABLE=1"
        else:
            try:
                module = importlib.import_module("shared._box_ops")
            except Exception as exc:  # noqa: BLE001 - ImportError, undefined symbols (torch ABI), ...
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
        if module is not None and os.environ.get(CPU_TARGET_ENV):
            _set_cpu_target(os.environ[CPU_TARGET_ENV], CPU_TARGET_ENV)
        if module is None:
            logger.warning("shared._box_ops not loaded (%s); box ops use the pure-PyTorch fallback", reason)
        _STATE = (module, reason)
    return _STATE


def extension_module():
    """The loaded ``shared._box_ops`` module, or None."""
    return _load()[0]


def cuda_kernels_compiled() -> bool:
    module = extension_module()
    return bool(getattr(module, "WITH_CUDA", 0)) if module is not None else False


def extension_status() -> str:
    """Short status: "cpu+cuda kernels", "cpu kernels" or "unavailable: <reason>"."""
    module, reason = _load()
    if module is None:
        return f"unavailable: {reason}"
    return "cpu+cuda kernels" if cuda_kernels_compiled() else "cpu kernels"


def device_unsupported_reason(*tensors: Tensor) -> Optional[str]:
    """Why the compiled kernels cannot run on these tensors' device (None if they can)."""
    module, reason = _load()
    if module is None:
        return f"extension unavailable ({reason})"
    device = tensors[0].device
    if device.type == "cuda" and not cuda_kernels_compiled():
        return "the extension was built without CUDA kernels"
    if device.type not in ("cpu", "cuda"):
        return f"no kernel for device type {device.type}"
    return None


def pairwise_unsupported_reason(a: Tensor, b: Tensor) -> Optional[str]:
    """Why ``pairwise_kernel`` cannot be used for these inputs (None if it can)."""
    if a.dtype == torch.float64 or b.dtype == torch.float64:
        return "float64 inputs are computed by the PyTorch path"
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        return "inputs require grad (the kernel has no backward)"
    return device_unsupported_reason(a, b)


def pairwise_kernel(kind: str, a: Tensor, b: Tensor, params: List[float]) -> Tensor:
    """Fused ``[N, M]`` similarity (float32) from the compiled op."""
    return torch.ops.shared_box_ops.pairwise_similarity(
        a.to(torch.float32).contiguous(), b.to(torch.float32).contiguous(), KERNEL_KIND_IDS[kind], params
    )


def nms_kernel(kind: str, boxes: Tensor, scores: Tensor, idxs: Tensor, threshold: float,
               params: List[float]) -> Tensor:
    """Per-class greedy NMS from the compiled op; kept indices sorted by decreasing score."""
    return torch.ops.shared_box_ops.batched_nms(
        boxes.to(torch.float32).contiguous(), scores.to(torch.float32).contiguous(),
        idxs.to(torch.int64).contiguous(), KERNEL_KIND_IDS[kind], float(threshold), params,
    )


def cpu_targets() -> List[str]:
    """Instruction-set targets of the compiled CPU loops that this CPU can run, in increasing order (the
    last one is the automatic choice); ``[]`` when the extension is unavailable."""
    if extension_module() is None:
        return []
    return list(torch.ops.shared_box_ops.cpu_targets())


def _set_cpu_target(name: str, source: str) -> str:
    try:
        return torch.ops.shared_box_ops.set_cpu_target(name)
    except RuntimeError as exc:
        raise ValueError(f"{source}={name!r}: {str(exc).splitlines()[0]}") from None


@contextlib.contextmanager
def use_cpu_target(name: str) -> Iterator[str]:
    """Run the compiled CPU kernels with the row loops of target ``name`` (one of :func:`cpu_targets`)
    inside the ``with`` block, process-wide; the automatic choice (or ``SHARED_BOX_OPS_CPU_TARGET``) is
    restored on exit. For tests and benchmarks. Raises ``ValueError`` for a target this CPU cannot run."""
    if extension_module() is None:
        raise RuntimeError(f"compiled kernels unavailable ({extension_status()})")
    try:
        yield _set_cpu_target(name, "cpu target")
    finally:
        _set_cpu_target(os.environ.get(CPU_TARGET_ENV, ""), CPU_TARGET_ENV)
