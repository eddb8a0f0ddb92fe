"""`make demo-iif`: the seed study of softmax vs IIF. One run is reproducible (the worker seeds the RNGs right
before the model and the loader are built), the demo's set has the long tail the docstring promises, and
(slow) the whole pipeline runs end to end at the reduced size as `make demo-iif` starts it."""

import json
import os

import pytest

from shared.datasets.synthetic_lvis import SyntheticLVISSpec, generate_synthetic_lvis
from shared.engine.demo_stats import RunResult, StudyJob
from shared.engine.provenance import load_module_file

DEMO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "projects", "IIF", "demo.py"))


def _load_demo():
    return load_module_file(DEMO, "iif_demo")


@pytest.fixture(scope="module")
def demo_datasets(tmp_path_factory):
    return str(tmp_path_factory.mktemp("iif_demo_datasets"))


def _train_split(root: str) -> dict:
    with open(os.path.join(root, "lvis", "lvis_v1_train.json")) as f:
        return json.load(f)


def test_demo_worker_is_deterministic(demo_datasets, tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", demo_datasets)
    demo = _load_demo()
    runs = []
    for i in range(2):
        out = str(tmp_path / f"run{i}")
        reported = []
        job = StudyJob("IIF", 0, 2, {"output_dir": out, "quick": True, "eval_period": 0})
        result = demo.run_one(job, reported.append)
        with open(os.path.join(out, "metrics.json")) as f:
            losses = [row["total_loss"] for row in map(json.loads, f) if "total_loss" in row]
        runs.append((losses, result.metrics, result.curve, result.extra["curve_APr"]))
    assert runs[0][0] and runs[0][0] == runs[1][0]  # identical training losses, bit for bit
    assert json.dumps(runs[0][1]) == json.dumps(runs[1][1]) and set(runs[0][1]) == set(demo.METRICS)
    assert [it for it, _ in runs[0][2]] == [2] and [it for it, _ in runs[0][3]] == [2]  # the final evaluation
    with open(tmp_path / "run0" / "iif_evaluation.json") as f:
        record = json.load(f)
    assert record["iif_enabled"] and record["iif_variant"] == "base10_obj"


def test_demo_set_has_the_intended_long_tail(demo_datasets, monkeypatch):
    """The facts the docstring states: LVIS's group proportions (8 / 9 / 7 of 24 classes), the rare classes
    with 1-10 training images (LVIS's rule), every training image holding a class, the most frequent class
    in at most 15 % of the images, and so every foreground IIF weight above the background's 1."""
    monkeypatch.setenv("DETECTRON2_DATASETS", demo_datasets)
    demo = _load_demo()
    root = demo.demo_data(quick=False)
    train = _train_split(root)
    cats = sorted(train["categories"], key=lambda c: c["id"])
    counts = [c["image_count"] for c in cats]
    assert counts == list(demo.FREQUENT + demo.COMMON + demo.RARE)  # exactly as asked
    groups = {g: [c["image_count"] for c in cats if c["frequency"] == g] for g in "fcr"}
    assert [len(groups[g]) for g in "fcr"] == [8, 9, 7]
    assert groups["r"] == [10, 8, 6, 4, 3, 2, 1] and max(groups["c"]) <= 40 < min(groups["f"])
    assert {a["image_id"] for a in train["annotations"]} == {img["id"] for img in train["images"]}
    assert len(train["images"]) == 450 and max(counts) / len(train["images"]) < 0.15
    from iif.weights import counts_from_lvis_json, iif_weight_vector

    for variant in ("base10_obj", "raw"):
        weights = iif_weight_vector(counts_from_lvis_json(train), variant)
        assert float(weights[:-1].min()) > 1.0 == float(weights[-1])
    with open(os.path.join(root, "lvis", "lvis_v1_val.json")) as f:
        val = json.load(f)
    assert {a["category_id"] for a in val["annotations"]} == set(range(1, 25))  # every class is evaluated
    text = demo.tail_summary(os.path.join(root, "lvis", "lvis_v1_train.json"))
    assert "rare (7) 10, 8, 6, 4, 3, 2, 1" in text
    assert "most frequent class in 60 of 450 images (13.3 %" in text


def test_image_counts_are_exact_and_checked(tmp_path):
    spec = SyntheticLVISSpec(num_classes=6, num_train_images=12, num_val_images=6, image_size=96,
                             val_images_per_class=2, min_object_size=10, max_object_size=18,
                             rare_max_images=2, common_max_images=5, image_counts=(8, 7, 5, 3, 2, 1))
    generate_synthetic_lvis(str(tmp_path / "ok"), spec)
    train = _train_split(str(tmp_path / "ok"))
    cats = sorted(train["categories"], key=lambda c: c["id"])
    assert [c["image_count"] for c in cats] == [8, 7, 5, 3, 2, 1]
    assert len({a["image_id"] for a in train["annotations"]}) == 12  # every image holds a class
    with pytest.raises(ValueError, match="sum to 20 < num_train_images=21"):
        generate_synthetic_lvis(str(tmp_path / "few"), SyntheticLVISSpec(
            num_classes=3, num_train_images=21, image_counts=(10, 6, 4)))
    with pytest.raises(ValueError, match="2 entries for num_classes=3"):
        generate_synthetic_lvis(str(tmp_path / "len"), SyntheticLVISSpec(num_classes=3, image_counts=(5, 5)))
    with pytest.raises(ValueError, match="must lie in 1..num_train_images=10"):
        generate_synthetic_lvis(str(tmp_path / "big"), SyntheticLVISSpec(
            num_classes=2, num_train_images=10, image_counts=(11, 1)))


def test_per_seed_and_curve_lines():
    results = [RunResult(k, s, {"AP": ap, "APr": ap / 4}, curve=[(50, ap / 2), (100, ap)],
                         extra={"curve_APr": [[50, 0.0], [100, ap / 4]]})
               for k, s, ap in (("softmax", 0, 10.0), ("IIF", 0, 12.0), ("softmax", 1, 20.0),
                                ("IIF", 1, 16.0))]
    lines = _load_demo().per_seed_and_curve(results, [0, 1]).splitlines()
    assert lines[0] == ("Final box AP per seed: seed 0: softmax 10.00 / IIF 12.00; "
                        "seed 1: softmax 20.00 / IIF 16.00")
    assert lines[1] == ("Final box APr per seed: seed 0: softmax 2.50 / IIF 3.00; "
                        "seed 1: softmax 5.00 / IIF 4.00")
    assert lines[2].endswith("softmax 50: 7.50, 100: 15.00; IIF 50: 7.00, 100: 14.00")
    assert lines[3].endswith("softmax 50: 0.00, 100: 3.75; IIF 50: 0.00, 100: 3.50")


@pytest.mark.slow
def test_make_demo_iif_pipeline_end_to_end_at_reduced_size(run_demo_quick):
    """`make demo-iif` runs `.venv/bin/python projects/IIF/demo.py`; DEMO_QUICK=1 is its reduced size."""
    text, results, out = run_demo_quick(DEMO, "DETECTRON2_DATASETS")
    assert "4 runs, 80 training steps in all, 2 at a time" in text and "ETA" in text
    assert "paired diff" in text and "Rule: a difference is larger than the seed noise" in text
    assert "most frequent class in" in text and "base10_obj" in text
    for metric in ("AP", "APr", "APc", "APf"):
        assert f"\n{metric:<10}" in text
    runs = sorted((r["method"], r["seed"]) for r in results)
    assert runs == [("IIF", 0), ("IIF", 1), ("softmax", 0), ("softmax", 1)]
    assert all([it for it, _ in r["curve"]] == [10, 20] for r in results)
    for name in ("learning_curve.png", "learning_curve_apr.png"):
        with open(out / name, "rb") as f:
            assert f.read(4) == b"\x89PNG"
