"""`make demo-rdcd`: the seed study of the SSCD-trained vs the RDCD-distilled 64-d student. One run is
reproducible (the worker seeds the RNGs right before the model and the loader are built), the regime the
docstring promises is the one the configs set, and (slow) the whole pipeline runs end to end at the reduced
size as `make demo-rdcd` starts it."""

import json
import os
import subprocess
import sys

import pytest

from shared.engine.demo_stats import RunResult, StudyJob
from shared.engine.provenance import load_module_file

DEMO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "projects", "RDCD", "demo.py"))


def _load_demo():
    return load_module_file(DEMO, "rdcd_demo")


@pytest.fixture(scope="module")
def demo_datasets(tmp_path_factory):
    return str(tmp_path_factory.mktemp("demo_datasets"))


def _losses(folder: str) -> list:
    with open(os.path.join(folder, "metrics.json")) as f:
        return [{k: v for k, v in row.items() if k.startswith("loss_")} for row in map(json.loads, f)
                if "total_loss" in row]


@pytest.mark.parametrize("method", ["SSCD", "RDCD"])
def test_demo_worker_is_deterministic(method, demo_datasets, tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", demo_datasets)
    demo = _load_demo()
    runs = []
    for i in range(2):
        out = str(tmp_path / f"run{i}")
        job = StudyJob(method, 3, 2, {"output_dir": out, "quick": True, "eval_period": 0,
                                      "teacher_weights": ""})
        reported = []
        result = demo.run_one(job, reported.append)
        runs.append((_losses(out), result.metrics, result.curve, result.extra["curve_uAP_sn"]))
    losses = runs[0][0]
    assert losses and losses == runs[1][0]  # identical training losses, bit for bit
    expected = {"SSCD": {"loss_infonce", "loss_entropy"},
                "RDCD": {"loss_infonce", "loss_hard_negative", "loss_relational_kd"}}[method]
    assert set(losses[-1]) == expected
    assert json.dumps(runs[0][1], sort_keys=True) == json.dumps(runs[1][1], sort_keys=True)
    assert set(demo.METRICS) | {"bg_cos", "sn_offset"} <= set(runs[0][1])
    assert [it for it, _ in runs[0][2]] == [2] and [it for it, _ in runs[0][3]] == [2]  # final evaluation


def test_demo_regime_is_the_papers_comparison():
    """Same student trunk, descriptor size, data, augmentations and schedule; only the objective differs,
    and only RDCD sees the (larger, 512-d) teacher."""
    demo = _load_demo()
    cfgs = {k: demo.build_demo_cfg(c, 1, "out", 300, 50, False) for k, c in demo.CONFIGS.items()}
    teacher = demo.build_demo_cfg(demo.TEACHER_CONFIG, 0, "out", 300, 0, False)
    sscd, rd = cfgs["SSCD"], cfgs["RDCD"]
    assert (sscd.MODEL.META_ARCHITECTURE, rd.MODEL.META_ARCHITECTURE) == ("SSCD", "RDCD")
    assert sscd.MODEL.SSCD.DIM == rd.MODEL.RDCD.DIM == 64  # the paper's smallest descriptor
    assert rd.MODEL.RDCD.LOSS.KD_W > 0 and rd.MODEL.RDCD.TEACHER == teacher.MODEL.SSCD.NETWORK
    assert rd.MODEL.RDCD.KD_DIM == teacher.MODEL.SSCD.DIM == 512
    for cfg in (sscd, rd, teacher):
        assert cfg.INPUT.COPY_DETECTION.AUGMENTATION == "advanced"  # SSCD's / RDCD's augmentations
        assert cfg.DATASETS.SYNTHETIC_COPY_DETECTION == sscd.DATASETS.SYNTHETIC_COPY_DETECTION
        assert cfg.INPUT.COPY_DETECTION == sscd.INPUT.COPY_DETECTION
    assert sscd.SOLVER == rd.SOLVER and sscd.SEED == rd.SEED == 1
    assert sscd.TEST.EVAL_PERIOD == 50 and sscd.SOLVER.MAX_ITER == 300


def test_per_seed_and_curve_lines():
    results = [RunResult(k, s, {"uAP": ap, "uAP_sn": ap + 1}, curve=[(50, ap / 2), (100, ap)],
                         extra={"curve_uAP_sn": [(50, ap), (100, ap + 1)]})
               for k, s, ap in (("SSCD", 1, 10.0), ("RDCD", 1, 12.0), ("SSCD", 2, 20.0), ("RDCD", 2, 16.0))]
    lines = _load_demo().per_seed_and_curve(results, [1, 2]).splitlines()
    assert lines[0] == "Final µAP per seed: seed 1: SSCD 10.00 / RDCD 12.00; seed 2: SSCD 20.00 / RDCD 16.00"
    assert lines[1] == ("Final µAPsn per seed: seed 1: SSCD 11.00 / RDCD 13.00; "
                        "seed 2: SSCD 21.00 / RDCD 17.00")
    assert lines[2].endswith("SSCD 50: 7.50, 100: 15.00; RDCD 50: 7.00, 100: 14.00")
    assert lines[3].endswith("SSCD 50: 15.00, 100: 16.00; RDCD 50: 14.00, 100: 15.00")


@pytest.mark.slow
def test_make_demo_pipeline_end_to_end_at_reduced_size(run_demo_quick):
    """`make demo-rdcd` runs `.venv/bin/python projects/RDCD/demo.py`; DEMO_QUICK=1 is its reduced size."""
    text, results, out = run_demo_quick(DEMO, "DETECTRON2_DATASETS")
    assert "1 runs, 10 training steps in all, 1 at a time" in text  # the teacher
    assert "4 runs, 40 training steps in all, 2 at a time" in text and "ETA" in text
    assert "paired diff" in text and "Rule: a difference is larger than the seed noise" in text
    assert "Teacher (10 it., seed 0): µAP" in text and "Descriptor spread" in text
    runs = sorted((r["method"], r["seed"]) for r in results)
    assert runs == [("RDCD", 1), ("RDCD", 2), ("SSCD", 1), ("SSCD", 2), ("teacher", 0)]
    assert all([it for it, _ in r["curve"]] == [5, 10] for r in results if r["method"] != "teacher")
    for name in ("learning_curve.png", "learning_curve_sn.png"):
        with open(out / name, "rb") as f:
            assert f.read(4) == b"\x89PNG"


def test_first_augly_import_leaves_the_global_random_stream_alone():
    """AugLy's import draws from `random`; rdcd restores the state, so a seeded run is the same whether or not
    AugLy was already imported in the process (fresh interpreters: the import happens once per process)."""

    code = ("import random; random.seed(3); {}; print(random.random())")
    plain = subprocess.run([sys.executable, "-c", code.format("pass")], capture_output=True, text=True,
                           check=True).stdout
    first_call = "from rdcd.transforms import augly_asset_dirs; augly_asset_dirs()"
    with_import = subprocess.run([sys.executable, "-c", code.format(first_call)], capture_output=True,
                                 text=True, check=True).stdout
    assert plain.strip() and with_import.strip() == plain.strip()
