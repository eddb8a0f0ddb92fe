"""The m / n estimator: exact pooled means over all (GT, anchor) pairs, caching, config resolution."""

import json
import os

import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_anchor_generator

from shared.engine import build_cfg
from simd.config import add_simd_config
from simd.normalisers import (
    CACHE_FILE,
    anchor_levels_from_cfg,
    cached_estimate,
    estimate_from_records,
    pooled_sums,
    resolve_normalisers,
)

BASE = os.path.join(
    os.path.dirname(__file__), "..", "..", "projects", "SimD", "configs", "Base-SimD-RCNN-FPN.yaml"
)


def _brute_force(gt, anchors):
    """m, n straight from the definition: every (GT, anchor) pair."""
    cg, ca = (gt[:, :2] + gt[:, 2:]) / 2, (anchors[:, :2] + anchors[:, 2:]) / 2
    sg, sa = gt[:, 2:] - gt[:, :2], anchors[:, 2:] - anchors[:, :2]
    dx = (cg[:, None, 0] - ca[None, :, 0]).abs() / (sg[:, None, 0] + sa[None, :, 0])
    dy = (cg[:, None, 1] - ca[None, :, 1]).abs() / (sg[:, None, 1] + sa[None, :, 1])
    return dx.sum().item(), dy.sum().item(), dx.numel()


@pytest.mark.parametrize("offset", [0.0, 0.5])
def test_pooled_sums_equal_brute_force_over_generated_anchors(small_cfg, offset):
    cfg = small_cfg.clone()
    cfg.MODEL.ANCHOR_GENERATOR.OFFSET = offset
    levels, divisibility = anchor_levels_from_cfg(cfg)
    assert [lvl.stride for lvl in levels] == [4, 8, 16, 32, 64] and divisibility == 32
    height, width = 100, 70  # padded to 128 x 96 like the model does
    gen = build_anchor_generator(cfg, [ShapeSpec(stride=s) for s in (4, 8, 16, 32, 64)])
    feature_maps = [torch.zeros(1, 1, -(-128 // s), -(-96 // s)) for s in (4, 8, 16, 32, 64)]
    anchors = torch.cat([b.tensor for b in gen(feature_maps)]).double()
    gt = torch.tensor(
        [[3.0, 4.0, 9.0, 7.0], [40.0, 50.0, 72.0, 66.0], [10.0, 80.0, 12.5, 99.0]], dtype=torch.float64
    )
    sx, sy, pairs = pooled_sums(gt, (height, width), levels, divisibility)
    bx, by, bpairs = _brute_force(gt, anchors)
    assert pairs == bpairs
    assert sx == pytest.approx(bx, rel=1e-6) and sy == pytest.approx(
        by, rel=1e-6
    )  # generator anchors are float32


def test_estimate_rescales_to_training_resolution_and_pools_over_images(small_cfg):
    levels, div = anchor_levels_from_cfg(small_cfg)
    recs = [
        {"height": 64, "width": 64, "annotations": [{"bbox": [4, 4, 8, 8], "bbox_mode": 1}]},
        {
            "height": 128,
            "width": 128,
            "annotations": [
                {"bbox": [10, 10, 20, 30], "bbox_mode": 1},
                {"bbox": [0, 0, 5, 5], "bbox_mode": 1, "iscrowd": 1},
            ],
        },
        {"height": 128, "width": 128, "annotations": []},
    ]
    est = estimate_from_records(recs, levels, 128, 128, div)
    # XYWH boxes; image 1 is resized x2: its GT (4, 4, 12, 12) becomes (8, 8, 24, 24); the crowd box is
    # skipped
    s1 = pooled_sums(torch.tensor([[8.0, 8.0, 24.0, 24.0]]), (128, 128), levels, div)
    s2 = pooled_sums(torch.tensor([[10.0, 10.0, 30.0, 40.0]]), (128, 128), levels, div)
    assert est.num_gt == 2 and est.num_images == 3
    assert est.m == pytest.approx((s1[0] + s2[0]) / (s1[2] + s2[2]))
    assert est.n == pytest.approx((s1[1] + s2[1]) / (s1[2] + s2[2]))
    with pytest.raises(ValueError, match="no .* GT box"):
        estimate_from_records(recs[2:], levels, 128, 128, div)


def test_cache_and_resolution_at_training_start(small_cfg):
    cfg = small_cfg.clone()
    cfg.MODEL.RPN.SIMILARITY = "simd"
    cfg.MODEL.SIMD.ESTIMATE_NORMALISERS = True
    resolved = resolve_normalisers(cfg)
    path = os.path.join(cfg.OUTPUT_DIR, CACHE_FILE)
    with open(path) as f:
        cached = json.load(f)
    assert resolved.MODEL.SIMD.M == pytest.approx(cached["estimate"]["m"]) and resolved.MODEL.SIMD.M > 0
    assert resolved.MODEL.SIMD.N == pytest.approx(cached["estimate"]["n"]) and resolved.MODEL.SIMD.N > 0
    assert cached["estimate"]["num_gt"] == sum(
        len(r["annotations"]) for r in DatasetCatalog.get("simdtest_tiny_train")
    )
    # a second call reads the cache (tamper with it to prove it)
    cached["estimate"]["m"] = 123.0
    with open(path, "w") as f:
        json.dump(cached, f)
    assert cached_estimate(cfg, cfg.OUTPUT_DIR).m == 123.0
    # a different anchor layout invalidates it
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[16], [32], [64], [128], [256]]
    assert cached_estimate(cfg, cfg.OUTPUT_DIR).m != 123.0


def test_without_estimation_config_is_unchanged():
    cfg = build_cfg(add_simd_config, BASE, ["MODEL.SIMD.M", "6.13", "MODEL.SIMD.N", "4.59"])
    assert resolve_normalisers(cfg) is cfg


def _train_two_iterations(small_cfg, output_dir):
    """What ``train_net.py`` does, shrunk: seed (``default_setup``), resolve m / n (estimate or cache),
    build the trainer (model initialisation), two iterations; the final weights."""
    from detectron2.utils.env import seed_all_rng

    from simd.trainer import SimDTrainer, prepare_cfg

    cfg = small_cfg.clone()
    cfg.OUTPUT_DIR = str(output_dir)
    cfg.MODEL.RPN.SIMILARITY = "simd"
    cfg.MODEL.SIMD.ESTIMATE_NORMALISERS = True
    cfg.SOLVER.MAX_ITER = 2
    cfg.DATASETS.TEST = ()
    seed_all_rng(cfg.SEED)
    cfg = prepare_cfg(cfg)
    trainer = SimDTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    return cfg, {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_estimating_m_n_leaves_the_training_random_stream_untouched(small_cfg, tmp_path):
    """The same run with and without a cached m / n in OUTPUT_DIR ends with the same weights (before, the
    estimator built a backbone, which drew from the global torch generator: 2 iterations later the weights
    differed)."""
    cfg, estimated = _train_two_iterations(small_cfg, tmp_path / "estimates")
    cached = tmp_path / "cached"
    cached.mkdir()
    with open(tmp_path / "estimates" / CACHE_FILE) as f:
        (cached / CACHE_FILE).write_text(f.read())
    cfg_cached, from_cache = _train_two_iterations(small_cfg, cached)
    assert (cfg_cached.MODEL.SIMD.M, cfg_cached.MODEL.SIMD.N) == (cfg.MODEL.SIMD.M, cfg.MODEL.SIMD.N)
    assert estimated.keys() == from_cache.keys()
    differ = [k for k in estimated if not torch.equal(estimated[k], from_cache[k])]
    assert differ == []
