"""Input validation shared by the retrieval-evaluation modules.

Every public entry point of :mod:`shared.retrieval` funnels its arrays through these helpers so that bad
input (NaN/inf descriptors, mismatched lengths, empty sets, wrong dimensionality, vectors that should be
unit-norm but are not) fails early with a message naming the argument, instead of producing a silent NaN
metric.
"""
from typing import Any, Optional

import numpy as np


def as_float32_matrix(x: Any, name: str, allow_empty: bool = False) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 ``[n, d]`` array; raise ``ValueError`` on NaN/inf, wrong rank
    or emptiness."""
    if hasattr(x, "detach"):  # torch.Tensor
        x = x.detach().cpu().numpy()
    arr = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [n, d], got shape {arr.shape}")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is empty (0 rows): nothing to evaluate")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has dimension 0")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise ValueError(f"{name} contains NaN or inf values in {bad} row(s)")
    return arr


def as_1d(x: Any, name: str, length: Optional[int] = None, dtype=None) -> np.ndarray:
    """Return ``x`` as a 1-D numpy array (optionally of ``dtype``), checking its length against ``length``."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype)
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"{name} has length {arr.shape[0]} but {length} was expected (one entry per row)")
    return arr


def check_same_dim(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{name_a} has dimension {a.shape[1]} but {name_b} has dimension {b.shape[1]}")


def check_unit_norm(x: np.ndarray, name: str, atol: float = 1e-3) -> None:
    """Raise ``ValueError`` unless every row of ``x`` has L2 norm 1 within ``atol``."""
    norms = np.linalg.norm(x, axis=1)
    worst = float(np.abs(norms - 1.0).max()) if len(norms) else 0.0
    if worst > atol:
        raise ValueError(
            f"{name} must be L2-normalised (unit rows) here, but a row norm deviates from 1 by {worst:.3g}; "
            "normalise first (e.g. faiss.normalize_L2 or shared.retrieval.knn.l2_normalize)"
        )
