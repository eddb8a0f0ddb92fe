"""`make demo`: the seed study of IoU vs SimD. One run is reproducible (the worker seeds the RNGs right before
the model and the loader are built), the coverage table is printed, and (slow) the whole pipeline runs end to
end at the reduced size as `make demo` starts it."""

import json
import os

import pytest

from shared.engine.demo_stats import StudyJob
from shared.engine.provenance import load_module_file

DEMO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "projects", "SimD", "demo.py"))


def _load_demo():
    return load_module_file(DEMO, "simd_demo")


@pytest.fixture(scope="module")
def demo_datasets(tmp_path_factory):
    return str(tmp_path_factory.mktemp("demo_datasets"))


def test_demo_worker_is_deterministic(demo_datasets, tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", demo_datasets)
    demo = _load_demo()
    runs = []
    for i in range(2):
        out = str(tmp_path / f"run{i}")
        reported = []
        job = StudyJob("IoU", 3, 2, {"output_dir": out, "quick": True, "eval_period": 0})
        result = demo.run_one(job, reported.append)
        with open(os.path.join(out, "metrics.json")) as f:
            losses = [row["total_loss"] for row in map(json.loads, f) if "total_loss" in row]
        runs.append((losses, result.metrics, result.curve))
    assert runs[0][0] and runs[0][0] == runs[1][0]  # identical training losses, bit for bit
    assert json.dumps(runs[0][1]) == json.dumps(runs[1][1]) and set(runs[0][1]) == set(demo.METRICS)
    assert [it for it, _ in runs[0][2]] == [2]  # the final evaluation closes the learning curve


def test_demo_prints_the_assignment_table_with_the_official_anchors(demo_datasets, tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", demo_datasets)
    table = _load_demo().assignment_table(str(tmp_path / "simd"), quick=True)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["RPN", "similarity", "very"] and lines[2].startswith("iou")
    assert lines[3].startswith("simd") and "%" in lines[3]
    # anchors of 32 px and more: IoU leaves every GT under 8 px without a positive anchor
    assert lines[2].split()[1] == "0.0%"
    assert os.path.exists(tmp_path / "simd" / "simd_normalisers.json")  # m, n estimated as in training


def test_demo_set_has_ai_tod_object_sizes(demo_datasets, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", demo_datasets)
    demo = _load_demo()
    root = demo.demo_data(quick=True)
    line = demo.size_distribution(os.path.join(root, "annotations", "aitod_train_v1.json"))
    mean = float(line.split("mean ")[1].split(" px")[0])
    assert 11.5 < mean < 14.0  # AI-TOD: 12.8 px (24 images here; 12.76 px on the full 120-image split)


@pytest.mark.slow
def test_make_demo_pipeline_end_to_end_at_reduced_size(run_demo_quick):
    """`make demo` runs `.venv/bin/python projects/SimD/demo.py`; DEMO_QUICK=1 is its reduced size."""
    text, results, out = run_demo_quick(DEMO, "DETECTRON2_DATASETS")
    assert "4 runs, 80 training steps in all, 2 at a time" in text and "ETA" in text
    assert "paired diff" in text and "Rule: a difference is larger than the seed noise" in text
    assert "SimD with m = " in text and "RPN similarity" in text
    runs = sorted((r["method"], r["seed"]) for r in results)
    assert runs == [("IoU", 1), ("IoU", 2), ("SimD", 1), ("SimD", 2)]
    assert all([it for it, _ in r["curve"]] == [10, 20] for r in results)
    with open(out / "learning_curve.png", "rb") as f:
        assert f.read(4) == b"\x89PNG"


def test_per_seed_and_curve_lines():
    from shared.engine.demo_stats import RunResult

    results = [RunResult(k, s, {"AP": ap}, curve=[(50, ap / 2), (100, ap)])
               for k, s, ap in (("IoU", 1, 10.0), ("SimD", 1, 12.0), ("IoU", 2, 20.0), ("SimD", 2, 16.0))]
    per_seed, curve = _load_demo().per_seed_and_curve(results, [1, 2]).splitlines()
    assert per_seed == "Final AP per seed: seed 1: IoU 10.00 / SimD 12.00; seed 2: IoU 20.00 / SimD 16.00"
    assert curve.endswith("IoU 50: 7.50, 100: 15.00; SimD 50: 7.00, 100: 14.00")


def test_size_scale_multiplies_the_object_sizes_and_is_checked(tmp_path):
    from shared.datasets.synthetic_tiny import generate_synthetic_tiny

    sizes = {}
    for scale in (1.0, 2.0):
        root = generate_synthetic_tiny(str(tmp_path / str(scale)), image_size=96, num_train=3, num_val=1,
                                       objects_per_image=(1, 1), clutter_per_image=(0, 0), size_scale=scale)
        with open(os.path.join(root, "annotations", "aitod_train_v1.json")) as f:
            sizes[scale] = [v for a in json.load(f)["annotations"] for v in a["bbox"][2:]]
    # one object per image is never rejected for overlap: the same draws, every side twice as long
    assert [2 * v for v in sizes[1.0]] == pytest.approx(sizes[2.0], abs=0.02) and len(sizes[1.0]) == 6
    with pytest.raises(ValueError, match="size_scale=3.0 must be in"):
        generate_synthetic_tiny(str(tmp_path / "bad"), size_scale=3.0)


def test_narrow_backbone_widths_and_strides():
    from detectron2.layers import ShapeSpec

    from shared.engine import build_cfg
    from simd.config import add_simd_config
    from simd.modeling import build_narrow_resnet_fpn_backbone

    config = os.path.join(os.path.dirname(DEMO), "configs", "synthetic", "demo_faster_rcnn_iou.yaml")
    cfg = build_cfg(add_simd_config, config, [])
    backbone = build_narrow_resnet_fpn_backbone(cfg, ShapeSpec(channels=3))
    bottom_up = backbone.bottom_up.output_shape()
    assert [bottom_up[f"res{k}"].channels for k in (2, 3, 4, 5)] == [16, 32, 64, 128]
    assert {k: (v.channels, v.stride) for k, v in backbone.output_shape().items()} == {
        "p2": (48, 4), "p3": (48, 8), "p4": (48, 16), "p5": (48, 32), "p6": (48, 64)}
    cfg.defrost()
    cfg.MODEL.RESNETS.DEPTH = 50
    with pytest.raises(ValueError, match="DEPTH 18 or 34, got 50"):
        build_narrow_resnet_fpn_backbone(cfg, ShapeSpec(channels=3))
