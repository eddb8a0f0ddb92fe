"""Estimate SimD's normalisers m and n from the training set (paper Eqs. 4-5, as the official code computes
them).

    m = mean over all (GT, anchor) pairs of |x_gt - x_anc| / (w_gt + w_anc)
    n = mean over all (GT, anchor) pairs of |y_gt - y_anc| / (h_gt + h_anc)

pooled over every GT of every training image and every anchor of every FPN level, with GTs and anchors
at training resolution (``ResizeShortestEdge(max(MIN_SIZE_TRAIN), MAX_SIZE_TRAIN)``, no flip) and the
anchor layout of the configured anchor generator.

The anchors of one level form a grid: centre x = c0 + i * stride for i < W_l (c0 = the cell anchor's
centre, including the generator's offset), and every column is repeated H_l times. So for one GT and one
cell anchor of width w_a the sum over the level's anchors is H_l * sum_i |x_gt - x_i| / (w_gt + w_a),
which is computed exactly without materialising the G x A pair matrix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog
from detectron2.data.transforms import ResizeShortestEdge
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_anchor_generator, build_backbone
from detectron2.structures import BoxMode

from shared.engine.resume import preserve_rng
from simd.similarity import simd_normalisers_are_set

logger = logging.getLogger(__name__)
CACHE_FILE = "simd_normalisers.json"


@dataclass
class AnchorLevel:
    """One FPN level: stride, and the cell anchors' centres (cx0, cy0) and sizes (w, h), each [K]."""

    stride: int
    centre_x: torch.Tensor
    centre_y: torch.Tensor
    width: torch.Tensor
    height: torch.Tensor


@dataclass
class NormaliserEstimate:
    m: float
    n: float
    num_images: int
    num_gt: int
    num_pairs: int


def anchor_levels_from_cfg(cfg: CfgNode) -> Tuple[List[AnchorLevel], int]:
    """The anchor layout the model will use: RetinaNet's or the RPN's input features, their strides
    (from the configured backbone) and the configured anchor generator's cell anchors; plus the
    backbone's size divisibility (images are padded to it before the anchors are laid out)."""
    in_features = (
        cfg.MODEL.RETINANET.IN_FEATURES
        if "RetinaNet" in cfg.MODEL.META_ARCHITECTURE
        else cfg.MODEL.RPN.IN_FEATURES
    )
    backbone = build_backbone(cfg)
    backbone_shapes = backbone.output_shape()
    shapes = [
        ShapeSpec(channels=backbone_shapes[f].channels, stride=backbone_shapes[f].stride) for f in in_features
    ]
    generator = build_anchor_generator(cfg, shapes)
    levels = []
    for stride, cell in zip(generator.strides, generator.cell_anchors):
        cell = cell.to(torch.float64)
        offset = float(generator.offset) * stride
        levels.append(
            AnchorLevel(
                stride=int(stride),
                centre_x=(cell[:, 0] + cell[:, 2]) / 2 + offset,
                centre_y=(cell[:, 1] + cell[:, 3]) / 2 + offset,
                width=cell[:, 2] - cell[:, 0],
                height=cell[:, 3] - cell[:, 1],
            )
        )
    return levels, int(backbone.size_divisibility)


def _axis_sum(
    gt_centre: torch.Tensor, gt_size: torch.Tensor, level: AnchorLevel, grid: int, repeats: int, along_x: bool
) -> torch.Tensor:
    """sum over the level's anchors and the GTs of |c_gt - c_anc| / (s_gt + s_anc) along one axis."""
    centres0 = level.centre_x if along_x else level.centre_y
    sizes = level.width if along_x else level.height
    positions = torch.arange(grid, dtype=torch.float64) * level.stride  # [W]
    # [G, K, W] distances of every GT centre to every anchor column, for every cell anchor
    dist = (gt_centre[:, None, None] - (centres0[None, :, None] + positions[None, None, :])).abs()
    denom = gt_size[:, None, None] + sizes[None, :, None]
    return (dist / denom).sum() * repeats


def pooled_sums(
    gt_boxes: torch.Tensor,
    image_hw: Tuple[int, int],
    levels: Sequence[AnchorLevel],
    size_divisibility: int = 0,
) -> Tuple[float, float, int]:
    """(sum_x, sum_y, number of pairs) for one image: ``gt_boxes`` [G, 4] XYXY at training resolution,
    ``image_hw`` the resized image size (padded up to ``size_divisibility`` as the model pads it)."""
    height, width = image_hw
    if size_divisibility > 1:
        height = int(math.ceil(height / size_divisibility) * size_divisibility)
        width = int(math.ceil(width / size_divisibility) * size_divisibility)
    boxes = gt_boxes.to(torch.float64)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    sum_x = sum_y = 0.0
    pairs = 0
    for level in levels:
        grid_w = int(math.ceil(width / level.stride))
        grid_h = int(math.ceil(height / level.stride))
        sum_x += float(_axis_sum(cx, w, level, grid_w, grid_h, along_x=True))
        sum_y += float(_axis_sum(cy, h, level, grid_h, grid_w, along_x=False))
        pairs += len(boxes) * grid_w * grid_h * len(level.width)
    return sum_x, sum_y, pairs


def estimate_from_records(
    records: Iterable[dict],
    levels: Sequence[AnchorLevel],
    min_size: int,
    max_size: int,
    size_divisibility: int = 0,
    max_images: int = 0,
) -> NormaliserEstimate:
    """Pooled m, n over detectron2 dataset dicts (boxes rescaled to ``ResizeShortestEdge(min_size,
    max_size)``); crowd and degenerate boxes are skipped."""
    total_x = total_y = 0.0
    total_pairs = num_gt = num_images = 0
    for record in records:
        if max_images and num_images >= max_images:
            break
        num_images += 1
        h0, w0 = record["height"], record["width"]
        new_h, new_w = ResizeShortestEdge.get_output_shape(h0, w0, min_size, max_size)
        boxes = [
            BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS)
            for a in record.get("annotations", [])
            if not a.get("iscrowd", 0)
        ]
        if not boxes:
            continue
        t = torch.tensor(boxes, dtype=torch.float64)
        t[:, 0::2] *= new_w / w0
        t[:, 1::2] *= new_h / h0
        t = t[(t[:, 2] > t[:, 0]) & (t[:, 3] > t[:, 1]) & torch.isfinite(t).all(dim=1)]
        if len(t) == 0:
            continue
        sx, sy, pairs = pooled_sums(t, (new_h, new_w), levels, size_divisibility)
        total_x, total_y, total_pairs = total_x + sx, total_y + sy, total_pairs + pairs
        num_gt += len(t)
    if total_pairs == 0:
        raise ValueError(
            "cannot estimate SimD's m and n: the training set has no (non-crowd, non-empty) GT box"
        )
    return NormaliserEstimate(
        m=total_x / total_pairs,
        n=total_y / total_pairs,
        num_images=num_images,
        num_gt=num_gt,
        num_pairs=total_pairs,
    )


def dataset_file_signature(dataset_name: str) -> Optional[List[object]]:
    """``[absolute path, size in bytes, mtime in ns]`` of the annotation file a registered dataset reads
    (``MetadataCatalog`` ``json_file``), or None when it has none or it does not exist."""
    from detectron2.data import MetadataCatalog

    path = MetadataCatalog.get(dataset_name).get("json_file")
    if not path or not os.path.exists(path):
        return None
    stat = os.stat(path)
    return [os.path.abspath(path), int(stat.st_size), int(stat.st_mtime_ns)]


def _fingerprint(cfg: CfgNode) -> Dict[str, object]:
    """What the estimate depends on: the training files (path, size, mtime), the invalid-box policy, the
    input size and the anchor layout."""
    return {
        "datasets": list(cfg.DATASETS.TRAIN),
        "dataset_files": [dataset_file_signature(name) for name in cfg.DATASETS.TRAIN],
        "drop_invalid_boxes": bool(cfg.DATASETS.DROP_INVALID_BOXES),
        "min_size_train": max(cfg.INPUT.MIN_SIZE_TRAIN),
        "max_size_train": cfg.INPUT.MAX_SIZE_TRAIN,
        "anchor_sizes": [list(map(float, s)) for s in cfg.MODEL.ANCHOR_GENERATOR.SIZES],
        "aspect_ratios": [list(map(float, r)) for r in cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS],
        "anchor_offset": float(cfg.MODEL.ANCHOR_GENERATOR.OFFSET),
        "in_features": list(
            cfg.MODEL.RETINANET.IN_FEATURES
            if "RetinaNet" in cfg.MODEL.META_ARCHITECTURE
            else cfg.MODEL.RPN.IN_FEATURES
        ),
        "backbone": [cfg.MODEL.BACKBONE.NAME, list(cfg.MODEL.RESNETS.OUT_FEATURES)],
        "meta_architecture": cfg.MODEL.META_ARCHITECTURE,
        "max_images": int(cfg.MODEL.SIMD.ESTIMATE_MAX_IMAGES),
    }


def estimate_normalisers(cfg: CfgNode) -> NormaliserEstimate:
    """m, n for ``cfg``'s training datasets, input size and anchor layout (no caching).

    The global Python / numpy / torch random states are restored afterwards: building the backbone for its
    strides initialises weights, and a run that estimates must continue with the same random stream as one
    that reads m, n from the cache (same seed, same weights)."""
    with preserve_rng():
        levels, size_divisibility = anchor_levels_from_cfg(cfg)
        records = (r for name in cfg.DATASETS.TRAIN for r in DatasetCatalog.get(name))
        return estimate_from_records(
            records,
            levels,
            max(cfg.INPUT.MIN_SIZE_TRAIN),
            cfg.INPUT.MAX_SIZE_TRAIN,
            size_divisibility=size_divisibility,
            max_images=int(cfg.MODEL.SIMD.ESTIMATE_MAX_IMAGES),
        )


def cached_estimate(cfg: CfgNode, output_dir: str) -> NormaliserEstimate:
    """``estimate_normalisers`` cached in ``output_dir/simd_normalisers.json`` (recomputed when the
    training files -- path, size, modification time --, the invalid-box policy, the input size or the anchor
    layout differ from the cached ones)."""
    fingerprint = _fingerprint(cfg)
    key = hashlib.sha1(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
    path = os.path.join(output_dir, CACHE_FILE)
    if os.path.exists(path):
        try:
            with open(path) as f:
                cached = json.load(f)
            if cached.get("key") == key:
                estimate = NormaliserEstimate(**cached["estimate"])
                logger.info("SimD normalisers from cache %s: m=%.4f n=%.4f", path, estimate.m, estimate.n)
                return estimate
        except (json.JSONDecodeError, KeyError, TypeError):
            logger.warning("ignoring unreadable SimD normaliser cache %s", path)
    estimate = estimate_normalisers(cfg)
    os.makedirs(output_dir, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"key": key, "fingerprint": fingerprint, "estimate": asdict(estimate)}, f, indent=2)
    os.replace(tmp, path)
    logger.info(
        "SimD normalisers estimated from %d images / %d GT boxes / %d pairs: m=%.4f n=%.4f (cached in %s)",
        estimate.num_images,
        estimate.num_gt,
        estimate.num_pairs,
        estimate.m,
        estimate.n,
        path,
    )
    return estimate


CHECKPOINT_KEY = "simd_normalisers"


def normalisers_from_checkpoint(path: str) -> Optional[Tuple[float, float]]:
    """``(m, n)`` stored by :class:`simd.trainer.SimDTrainer` in a checkpoint (key ``simd_normalisers``), or
    None for any other weights file (an ImageNet ``.pkl``, a checkpoint without them, a missing path)."""
    if not path or not path.endswith(".pth") or not os.path.isfile(path):
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - not a plain-data checkpoint: it cannot carry ours either
        return None
    stored = data.get(CHECKPOINT_KEY) if isinstance(data, dict) else None
    if not isinstance(stored, dict) or "m" not in stored or "n" not in stored:
        return None
    return float(stored["m"]), float(stored["n"])


def _with_normalisers(cfg: CfgNode, m: float, n: float) -> CfgNode:
    cfg = cfg.clone()
    was_frozen = cfg.is_frozen()
    cfg.defrost()
    cfg.MODEL.SIMD.M, cfg.MODEL.SIMD.N = float(m), float(n)
    if was_frozen:
        cfg.freeze()
    return cfg


def resolve_normalisers(cfg: CfgNode) -> CfgNode:
    """``MODEL.SIMD.M/N`` for the run, in this order:

    1. given in the config (``M``/``N`` not -1): used as they are;
    2. ``MODEL.SIMD.ESTIMATE_NORMALISERS`` off: unchanged (a SimD model without M/N then fails at build
       time with a message naming the keys);
    3. ``MODEL.WEIGHTS`` is a SimD checkpoint (it stores the m, n it was trained with): those, so
       ``--eval-only`` in a fresh directory needs no training json;
    4. the estimate from the training set (cached in ``OUTPUT_DIR/simd_normalisers.json``).

    Returns a new cfg when M/N were filled in.
    """
    if simd_normalisers_are_set(cfg):
        logger.info("SimD normalisers from the config: m=%s n=%s", cfg.MODEL.SIMD.M, cfg.MODEL.SIMD.N)
        return cfg
    if not cfg.MODEL.SIMD.ESTIMATE_NORMALISERS:
        return cfg
    stored = normalisers_from_checkpoint(cfg.MODEL.WEIGHTS)
    if stored is not None:
        logger.info("SimD normalisers from the checkpoint %s: m=%.4f n=%.4f", cfg.MODEL.WEIGHTS, *stored)
        return _with_normalisers(cfg, *stored)
    estimate = cached_estimate(cfg, cfg.OUTPUT_DIR)
    return _with_normalisers(cfg, estimate.m, estimate.n)
