"""`make demo-das`: the seed study of the triplet loss with and without DAS. One run is reproducible (the
worker seeds the RNGs right before the model and the loader are built), the regime is the official CUB run's
batch composition scaled down, the text tables say what the results hold, and (slow) the whole pipeline runs
end to end at the reduced size."""

import json
import os

import pytest

from shared.engine.demo_stats import RunResult, StudyJob
from shared.engine.provenance import load_module_file

DEMO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "projects", "DAS", "demo.py"))
CONFIG_DIR = os.path.join(os.path.dirname(DEMO), "configs")


def _load_demo():
    return load_module_file(DEMO, "das_demo")


@pytest.fixture(scope="module")
def demo_datasets(tmp_path_factory):
    """A dataset root of this module only (the demo's sets differ from the session's tiny set)."""
    return str(tmp_path_factory.mktemp("das_demo_datasets"))


def test_demo_worker_is_deterministic(demo_datasets, tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", demo_datasets)
    demo = _load_demo()
    runs = []
    for i in range(2):
        out = str(tmp_path / f"run{i}")
        reported = []
        job = StudyJob("DAS", 3, 3, {"output_dir": out, "quick": True, "eval_period": 2})
        result = demo.run_one(job, reported.append)
        runs.append((result.extra["losses"], result.metrics, result.curve))
    assert len(runs[0][0]) == 3 and runs[0][0] == runs[1][0]  # identical training losses, bit for bit
    assert json.dumps(runs[0][1]) == json.dumps(runs[1][1]) and set(runs[0][1]) == set(demo.METRICS)
    assert [it for it, _ in runs[0][2]] == [2, 3]  # every evaluation, the final one closing the curve
    assert runs[0][2][-1][1] == runs[0][1]["R@1"]  # the reported metrics are the last evaluation's
    # the other method on the same seed trains the same network on the same batches, but its loss differs
    baseline = demo.run_one(StudyJob("baseline", 3, 3, {"output_dir": str(tmp_path / "base"), "quick": True,
                                                        "eval_period": 0}), lambda steps: None)
    assert [it for it, _ in baseline.curve] == [3] and baseline.extra["losses"] != runs[0][0]
    with open(os.path.join(str(tmp_path / "base"), "demo_metrics.json")) as f:
        assert json.load(f)["extra"]["losses"] == baseline.extra["losses"]


def test_regime_is_the_official_cub_batch_composition_scaled_down(demo_datasets, tmp_path, monkeypatch):
    """Fixed before any result: 2 images per class in a batch and 56 % of the training classes per batch as
    in the official CUB run, and its loss, embedding and DAS values."""
    monkeypatch.setenv("DETECTRON2_DATASETS", demo_datasets)
    demo = _load_demo()
    cfg = demo.build_demo_cfg("DAS", 1, str(tmp_path), 600, 50, quick=False)
    demo.demo_data(cfg)
    facts, official = demo.regime_facts(cfg), demo.official_regime_facts()
    assert official == pytest.approx({"train classes": 100, "images per class": 58.64,
                                      "classes per batch": 56, "images per class in a batch": 2,
                                      "share of classes per batch": 0.56})
    assert facts == pytest.approx({"train classes": 32, "images per class": 30, "classes per batch": 18,
                                   "images per class in a batch": 2, "share of classes per batch": 0.5625})
    assert abs(facts["share of classes per batch"] - official["share of classes per batch"]) < 0.01
    lines = demo.regime_lines(cfg).splitlines()
    assert lines[0].endswith("32 training classes × 30.0 images; batch 18 classes × 2 images (56 % of the "
                             "classes per batch)")
    assert lines[1].endswith("100 training classes × 58.6 images; batch 56 classes × 2 images (56 % of the "
                             "classes per batch)")
    # every loss, embedding, optimiser and DAS value of the official CUB triplet [D] preset
    from das.config import add_das_config

    from shared.engine import build_cfg

    cub = build_cfg(add_das_config, os.path.join(CONFIG_DIR, "CUB200", "triplet_distance.yaml"))
    for key in ("LOSS", "MINER", "DAS"):
        assert cfg.MODEL[key] == cub.MODEL[key], key
    for key in ("DIM", "POOLING", "NORMALIZE"):
        assert cfg.MODEL.EMBEDDING[key] == cub.MODEL.EMBEDDING[key], key
    for key in ("OPTIMIZER", "WEIGHT_DECAY", "GAMMA", "WARMUP_ITERS", "LR_SCHEDULER_NAME"):
        assert cfg.SOLVER[key] == cub.SOLVER[key], key
    assert cfg.DATALOADER.SAMPLES_PER_CLASS == cub.DATALOADER.SAMPLES_PER_CLASS == 2
    # LR x0.3 at the same fractions of the run (official: epochs 200 and 250 of 300)
    assert [s / cfg.SOLVER.MAX_ITER for s in cfg.SOLVER.STEPS] == [s / cub.SOLVER.MAX_ITER
                                                                   for s in cub.SOLVER.STEPS]
    baseline = demo.build_demo_cfg("baseline", 1, "", 600, 50, False)
    assert cfg.MODEL.DAS.ENABLED and not baseline.MODEL.DAS.ENABLED
    # the test classes are unseen, as many as the training classes, with as many images
    from das.datasets import get_records

    train, test = (get_records(names) for names in (cfg.DATASETS.TRAIN, cfg.DATASETS.TEST))
    assert not {r["class_id"] for r in train} & {r["class_id"] for r in test}
    assert len(test) == len(train) == 960


def test_arguments_defaults_and_quick_size(monkeypatch):
    demo = _load_demo()
    monkeypatch.delenv("DEMO_QUICK", raising=False)
    args = demo.parse_args([])
    assert (args.seeds, args.base_seed, args.iters, args.eval_period, args.processes) == (5, 1, 600, 50, 2)
    assert not args.quick
    quick = demo.parse_args(["--quick"])
    assert (quick.seeds, quick.iters, quick.eval_period) == (2, 20, 10)
    monkeypatch.setenv("DEMO_QUICK", "1")
    assert demo.parse_args(["--seeds", "3", "SOLVER.BASE_LR", "0.01"]).iters == 20
    assert demo.parse_args(["SOLVER.BASE_LR", "0.01"]).opts == ["SOLVER.BASE_LR", "0.01"]


def test_text_tables():
    demo = _load_demo()
    results = [RunResult(k, s, {"R@1": r1}, curve=[(100, r1 - 10), (300, r1 - 1), (400, r1)])
               for k, s, r1 in (("baseline", 1, 50.0), ("DAS", 1, 52.5), ("baseline", 2, 60.0),
                                ("DAS", 2, 61.0))]
    assert demo.per_seed_table(results, [1, 2]).splitlines() == [
        "  seed    baseline R@1         DAS R@1  DAS − baseline",
        "     1           50.00           52.50           +2.50",
        "     2           60.00           61.00           +1.00"]
    curve = demo.curve_table(results).splitlines()
    assert curve[0].split() == ["iteration", "baseline", "DAS"]
    assert curve[1].split() == ["100", "45.00", "±", "7.07", "46.75", "±", "6.01"]
    assert curve[3].split() == ["400", "55.00", "±", "7.07", "56.75", "±", "6.01"]
    assert demo.plateau_line(results, 400) == (
        "Mean R@1 change over the last quarter of the run: baseline +1.00 (iteration 300 → 400), DAS +1.00 "
        "(iteration 300 → 400)")


@pytest.mark.slow
def test_make_demo_das_pipeline_end_to_end_at_reduced_size(run_demo_quick):
    """`make demo-das` runs `.venv/bin/python projects/DAS/demo.py`; ``--quick`` is its reduced size."""
    text, results, out = run_demo_quick(DEMO, "DETECTRON2_DATASETS", quick_flag=True)
    assert "4 runs, 80 training steps in all, 2 at a time" in text and "ETA" in text
    assert "official CUB run: 100 training classes" in text and "demo: 8 training classes × 6.0" in text
    assert "paired diff" in text and "Rule: a difference is larger than the seed noise" in text
    for metric in ("R@1", "R@2", "NMI", "F1"):
        assert f"\n{metric} " in text and f"{metric}: " in text
    assert "Mean R@1 change over the last quarter of the run" in text
    runs = sorted((r["method"], r["seed"]) for r in results)
    assert runs == [("DAS", 1), ("DAS", 2), ("baseline", 1), ("baseline", 2)]
    assert all([it for it, _ in r["curve"]] == [10, 20] for r in results)
    with open(out / "learning_curve.png", "rb") as f:
        assert f.read(4) == b"\x89PNG"
    assert (out / "demo_table.txt").read_text().startswith("DAS demo: triplet loss")
