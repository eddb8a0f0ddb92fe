"""`make demo-das` is reproducible: each variant is seeded from SEED before its model is built, so running the
demo's ``run_variant`` twice gives identical training losses and retrieval metrics (before, every run started
from different random weights)."""
import importlib.util
import json
import os

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "projects", "DAS", "demo.py")


def _load_demo():
    spec = importlib.util.spec_from_file_location("das_demo", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_variant_is_deterministic(das_dataset_root, tmp_path, monkeypatch, tiny_opts):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(das_dataset_root))
    demo = _load_demo()
    runs = []
    for i in range(2):
        out = str(tmp_path / f"run{i}")
        opts = tiny_opts + ["TEST.EVAL_PERIOD", "3"]
        history, _ = demo.run_variant(demo.DEFAULT_CONFIG, True, out, 3, opts)
        with open(os.path.join(out, "metrics.json")) as f:
            losses = [row["total_loss"] for row in map(json.loads, f) if "total_loss" in row]
        runs.append((losses, history.last()["results"]))
    assert runs[0][0] and runs[0][0] == runs[1][0]  # identical training losses, bit for bit
    assert json.dumps(runs[0][1], sort_keys=True) == json.dumps(runs[1][1], sort_keys=True)
