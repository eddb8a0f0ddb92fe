"""`make demo-das` is reproducible: each variant is seeded from SEED before its model is built, so running the
demo's ``run_variant`` twice gives identical training losses and retrieval metrics (before, every run started
from different random weights)."""
import importlib.util
import json
import os

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "projects", "DAS", "demo.py")
TINY = [
    "MODEL.EMBEDDING.BACKBONE",
    "test_resnet",
    "MODEL.EMBEDDING.DIM",
    "16",
    "MODEL.DAS.NUM_CLASSES",
    "4",
    "INPUT.TRAIN_SIZE",
    "32",
    "INPUT.TEST_RESIZE",
    "32",
    "INPUT.TEST_SIZE",
    "32",
    "SOLVER.IMS_PER_BATCH",
    "6",
    "TEST.RETRIEVAL.RECALL_KS",
    "(1, 2)",
    # the conftest set (8 classes x 4 images, 32 px), so that the synthetic-data step finds it cached
    "DATASETS.SYNTHETIC_FINE_GRAINED.NUM_CLASSES",
    "8",
    "DATASETS.SYNTHETIC_FINE_GRAINED.IMAGES_PER_CLASS",
    "4",
    "DATASETS.SYNTHETIC_FINE_GRAINED.IMAGE_SIZE",
    "32",
    "TEST.EVAL_PERIOD",
    "3",
]


def _load_demo():
    spec = importlib.util.spec_from_file_location("das_demo", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_variant_is_deterministic(das_dataset_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(das_dataset_root))
    demo = _load_demo()
    runs = []
    for i in range(2):
        out = str(tmp_path / f"run{i}")
        history, _ = demo.run_variant(demo.DEFAULT_CONFIG, True, out, 3, TINY)
        with open(os.path.join(out, "metrics.json")) as f:
            losses = [row["total_loss"] for row in map(json.loads, f) if "total_loss" in row]
        runs.append((losses, history.last()["results"]))
    assert runs[0][0] and runs[0][0] == runs[1][0]  # identical training losses, bit for bit
    assert json.dumps(runs[0][1], sort_keys=True) == json.dumps(runs[1][1], sort_keys=True)
