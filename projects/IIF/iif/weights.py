"""Inverse Image Frequency (IIF) class weights, computed from per-class counts of the training set.

Every variant maps a class's count ``n_c`` and the dataset total ``N`` to a weight ``w_c``
(see :data:`IIF_VARIANTS`). The ``<variant>_obj`` versions use instance counts (``instance_count``,
``N_obj`` = total instances) instead of image counts. The detector multiplies logit ``c`` by ``w_c``;
background keeps a fixed weight (1.0), appended as the LAST entry (detectron2's "background = K").

Counts come from, in order of preference:

* an LVIS-format json (``categories[i].image_count`` / ``instance_count``, ``len(images)``):
  :func:`counts_from_lvis_json`;
* any detectron2 dataset-dict list (COCO-style): :func:`counts_from_dataset_dicts`;
* or the weights are read by column NAME from an official-style CSV: :func:`weights_from_csv`.

Degenerate counts (documented rule, tested in ``tests/iif/test_iif_weights.py``):

* a class with ``n_c = 0`` (no training image) is weighted as if it appeared in ONE image
  (``n_c := 1``), i.e. it gets the largest weight of the variant — finite, never ``inf``;
* the variants that are singular at ``n_c = N`` (``rel``, ``normit``, ``gombit``; e.g. ``ln(0)``) use
  ``n_c := N - 1/2`` for a class present in every image; ``raw``/``base2``/``base10`` give weight 0
  there and ``smooth`` gives 1, which are finite and kept;
* ``n_c > N``, negative counts, ``N < 1`` or non-finite results raise ``ValueError``.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Optional, Sequence

import numpy as np
import torch
from fvcore.common.registry import Registry
from scipy.special import ndtri

from shared.registry import get_or_raise, register_as

__all__ = [
    "IIF_VARIANTS",
    "ClassCounts",
    "compute_iif_weights",
    "counts_from_dataset_dicts",
    "counts_from_lvis_json",
    "iif_weight_vector",
    "parse_variant",
    "valid_variant_names",
    "weights_from_csv",
]

IIF_VARIANTS = Registry("IIF_VARIANTS")
IIF_VARIANTS.__doc__ = """Base IIF variants: ``fn(n_c: float64 array, N: float) -> w: float64 array``.
Each ``<name>`` is also available as ``<name>_obj`` (instance counts)."""

# Official CSV column name -> variant name used here (the official code calls `rel` "prob").
VARIANT_ALIASES = {"prob": "rel"}
# Variants whose formula is singular at n_c = N; for those n_c is capped at N - 1/2 (module docstring).
_SINGULAR_AT_N = frozenset({"rel", "normit", "gombit"})
OBJ_SUFFIX = "_obj"


@register_as(IIF_VARIANTS, "raw")
def raw_iif(n: np.ndarray, total: float) -> np.ndarray:
    """w_c = ln(N / n_c)."""
    return np.log(total / n)


@register_as(IIF_VARIANTS, "smooth")
def smooth_iif(n: np.ndarray, total: float) -> np.ndarray:
    """w_c = ln((N + 1) / (n_c + 1)) + 1."""
    return np.log((total + 1.0) / (n + 1.0)) + 1.0


@register_as(IIF_VARIANTS, "rel")
def relative_iif(n: np.ndarray, total: float) -> np.ndarray:
    """w_c = ln((N - n_c) / n_c) (official CSV column ``prob``)."""
    return np.log((total - n) / n)


@register_as(IIF_VARIANTS, "normit")
def normit_iif(n: np.ndarray, total: float) -> np.ndarray:
    """w_c = -Phi^{-1}(n_c / N), Phi^{-1} the inverse standard-normal CDF."""
    return -ndtri(n / total)


@register_as(IIF_VARIANTS, "gombit")
def gombit_iif(n: np.ndarray, total: float) -> np.ndarray:
    """w_c = -ln(-ln(1 - n_c / N))."""
    return -np.log(-np.log1p(-n / total))


@register_as(IIF_VARIANTS, "base2")
def base2_iif(n: np.ndarray, total: float) -> np.ndarray:
    """w_c = log2(N / n_c)."""
    return np.log2(total / n)


@register_as(IIF_VARIANTS, "base10")
def base10_iif(n: np.ndarray, total: float) -> np.ndarray:
    """w_c = log10(N / n_c)."""
    return np.log10(total / n)


def valid_variant_names() -> list[str]:
    """All accepted variant names: every base variant, its ``_obj`` version, and the CSV aliases."""
    base = sorted(name for name, _ in IIF_VARIANTS)
    return base + [b + OBJ_SUFFIX for b in base] + sorted(VARIANT_ALIASES)


def parse_variant(name: str) -> tuple[str, bool]:
    """Split ``"base10_obj"`` into ``("base10", True)``; raise ``KeyError`` listing the valid names."""
    key = name.strip().lower()
    use_instances = key.endswith(OBJ_SUFFIX)
    if use_instances:
        key = key[: -len(OBJ_SUFFIX)]
    key = VARIANT_ALIASES.get(key, key)
    if key not in IIF_VARIANTS:
        get_or_raise(dict.fromkeys(valid_variant_names()), name, "IIF variant")  # raises, listing them
    return key, use_instances


@dataclass(frozen=True)
class ClassCounts:
    """Per-class training-set counts, in contiguous class order (index = detectron2 class id)."""

    image_counts: np.ndarray  # n_c: number of training images containing class c
    num_images: int  # N
    instance_counts: Optional[np.ndarray] = None  # instances of class c (for the `_obj` variants)
    num_instances: Optional[int] = None  # N_obj: total instances
    source: str = ""  # where the counts came from (for logs and errors)

    @property
    def num_classes(self) -> int:
        return int(len(self.image_counts))

    def for_variant(self, use_instances: bool) -> tuple[np.ndarray, float]:
        """``(n, N)`` for image-count or instance-count variants."""
        if not use_instances:
            return np.asarray(self.image_counts, dtype=np.float64), float(self.num_images)
        if self.instance_counts is None or self.num_instances is None:
            raise ValueError(
                f"an `_obj` IIF variant needs per-class instance counts, but the counts from "
                f"{self.source or 'this source'} have none (LVIS json: `instance_count`)"
            )
        return np.asarray(self.instance_counts, dtype=np.float64), float(self.num_instances)


def _variant_fn(name: str) -> Callable[[np.ndarray, float], np.ndarray]:
    return IIF_VARIANTS.get(name)


def compute_iif_weights(counts: Sequence[float] | np.ndarray, total: float, variant: str) -> np.ndarray:
    """Foreground IIF weights ``w_c = f_variant(n_c, N)`` (float64, length K) with the degenerate-count
    rule of the module docstring. ``variant`` is a base name (``raw``, ``smooth``, ...; ``prob``
    accepted for ``rel``); the ``_obj`` suffix is resolved by the caller, which passes instance counts."""
    base, _ = parse_variant(variant)
    n = np.asarray(counts, dtype=np.float64).reshape(-1)
    total = float(total)
    if not math.isfinite(total) or total < 1:
        raise ValueError(f"IIF needs a dataset total N >= 1, got N={total}")
    if n.size == 0:
        raise ValueError("IIF needs at least one class count")
    if not np.all(np.isfinite(n)) or np.any(n < 0):
        bad = n[~(np.isfinite(n) & (n >= 0))]
        raise ValueError(f"IIF class counts must be finite and >= 0, got {bad[:3].tolist()}")
    too_big = np.nonzero(n > total)[0]
    if too_big.size:
        c = int(too_big[0])
        raise ValueError(
            f"inconsistent counts: class {c} has n_c={n[c]:g} > N={total:g} "
            f"({too_big.size} class(es) exceed the dataset total)"
        )
    n = np.maximum(n, 1.0)  # zero-image classes are treated as seen once (finite, largest weight)
    if base in _SINGULAR_AT_N:
        n = np.minimum(n, total - 0.5)
        if total <= 1:
            raise ValueError(f"IIF variant {base!r} needs N >= 2 (its formula is singular at n_c = N)")
    w = _variant_fn(base)(n, total)
    if not np.all(np.isfinite(w)):
        raise ValueError(f"IIF variant {base!r} produced non-finite weights for counts {n[~np.isfinite(w)]}")
    return w


def iif_weight_vector(
    counts: ClassCounts,
    variant: str = "raw",
    *,
    norm_p: float = 0.0,
    bg_weight: float = 1.0,
) -> torch.Tensor:
    """The (K+1,) float32 CPU tensor the detector multiplies its logits with.

    ``w[:K]`` = IIF weights of ``variant`` (optionally divided by their p-norm ``||w[:K]||_p`` when
    ``norm_p > 0``; off by default), ``w[K]`` = ``bg_weight`` (background, detectron2's last class).
    """
    base, use_instances = parse_variant(variant)
    n, total = counts.for_variant(use_instances)
    w = compute_iif_weights(n, total, base)
    if norm_p < 0:
        raise ValueError(f"IIF NORM_P must be >= 0 (0 = off), got {norm_p}")
    if norm_p > 0:
        norm = float(np.linalg.norm(w, ord=norm_p))
        if norm == 0.0:
            raise ValueError("IIF p-norm of the weights is 0; cannot normalise")
        w = w / norm
    if not math.isfinite(bg_weight):
        raise ValueError(f"IIF background weight must be finite, got {bg_weight}")
    return torch.tensor(np.append(w, bg_weight), dtype=torch.float32)


def _load_json(json_or_path: str | Mapping) -> Mapping:
    if isinstance(json_or_path, Mapping):
        return json_or_path
    with open(json_or_path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"malformed LVIS json {json_or_path!r}: {e}") from e


def counts_from_lvis_json(json_or_path: str | Mapping) -> ClassCounts:
    """Counts from an LVIS-format json (path or loaded dict).

    ``n_c`` = ``categories[c].image_count``, ``N`` = ``len(images)``; instance counts from
    ``instance_count`` (``N_obj`` = their sum). Categories are ordered by id, which must be 1..K
    (detectron2 v0.6 maps LVIS id -> id - 1). A category without ``image_count`` raises ``ValueError``
    pointing to :func:`counts_from_dataset_dicts` (``COUNT_SOURCE "dicts"``).
    """
    data = _load_json(json_or_path)
    where = json_or_path if isinstance(json_or_path, str) else "the given LVIS dict"
    for key in ("images", "categories"):
        if key not in data:
            raise ValueError(f"{where}: not an LVIS/COCO json (no {key!r} field)")
    cats = sorted(data["categories"], key=lambda c: c["id"])
    ids = [c["id"] for c in cats]
    if ids != list(range(1, len(ids) + 1)):
        raise ValueError(f"{where}: category ids must be 1..K as in LVIS v1, got {ids[:5]}...")
    missing = [c.get("name", c["id"]) for c in cats if "image_count" not in c]
    if missing:
        raise ValueError(
            f"{where}: {len(missing)} categories (e.g. {missing[0]!r}) have no 'image_count'; "
            "set MODEL.ROI_BOX_HEAD.IIF.COUNT_SOURCE 'dicts' to count images from the dataset instead"
        )
    image_counts = np.array([c["image_count"] for c in cats], dtype=np.int64)
    if all("instance_count" in c for c in cats):
        instance_counts = np.array([c["instance_count"] for c in cats], dtype=np.int64)
        num_instances = int(instance_counts.sum())
    else:
        instance_counts, num_instances = None, None
    return ClassCounts(image_counts, len(data["images"]), instance_counts, num_instances, source=str(where))


def counts_from_dataset_dicts(dataset_dicts: Iterable[Mapping], num_classes: int,
                              source: str = "") -> ClassCounts:
    """Count ``n_c`` (images containing class c), instances per class, ``N`` and ``N_obj`` from a
    detectron2 dataset-dict list (contiguous ``category_id`` in [0, num_classes)). Crowd boxes count too."""
    image_counts = np.zeros(num_classes, dtype=np.int64)
    instance_counts = np.zeros(num_classes, dtype=np.int64)
    num_images = 0
    for record in dataset_dicts:
        num_images += 1
        classes = [int(a["category_id"]) for a in record.get("annotations", [])]
        bad = [c for c in classes if not 0 <= c < num_classes]
        if bad:
            raise ValueError(
                f"{source or 'dataset'}: image {record.get('image_id', record.get('file_name'))} has "
                f"category_id {bad[0]} outside [0, {num_classes}) (NUM_CLASSES mismatch?)"
            )
        np.add.at(instance_counts, classes, 1)
        image_counts[sorted(set(classes))] += 1
    if num_images == 0:
        raise ValueError(f"{source or 'dataset'}: no images, cannot compute IIF counts")
    return ClassCounts(image_counts, num_images, instance_counts, int(instance_counts.sum()), source=source)


def weights_from_csv(path: str, variant: str, num_classes: int, bg_weight: float = 1.0) -> torch.Tensor:
    """Read precomputed foreground weights from an official-style CSV, by column NAME (``raw``,
    ``smooth``, ``prob``/``rel``, ..., ``base10_obj``), never by position.

    The official ``idf_1204.csv`` has one placeholder row before the K class rows: a file with K+1 data
    rows has its first one dropped; K rows are used as they are; any other row count is an error.
    Returns the (K+1,) vector with ``bg_weight`` appended.
    """
    base, use_instances = parse_variant(variant)
    names = [base + (OBJ_SUFFIX if use_instances else "")]
    names += [alias + (OBJ_SUFFIX if use_instances else "")
              for alias, b in VARIANT_ALIASES.items() if b == base]
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        rows = [{k.strip(): v for k, v in row.items() if k is not None} for row in reader]
    column = next((c for c in names if c in columns), None)
    if column is None:
        raise KeyError(f"IIF CSV {path!r} has no column for variant {variant!r} (looked for {names}); "
                       f"columns: {columns}")
    if len(rows) == num_classes + 1:
        rows = rows[1:]
    elif len(rows) != num_classes:
        raise ValueError(f"IIF CSV {path!r} has {len(rows)} data rows; expected {num_classes} "
                         f"(NUM_CLASSES) or {num_classes + 1} (with the official placeholder row)")
    try:
        w = np.array([float(r[column]) for r in rows], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"IIF CSV {path!r}: column {column!r} has a non-numeric value ({e})") from e
    if not np.all(np.isfinite(w)):
        raise ValueError(f"IIF CSV {path!r}: column {column!r} contains non-finite values")
    return torch.tensor(np.append(w, bg_weight), dtype=torch.float32)
