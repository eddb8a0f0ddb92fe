"""--eval-only export (ISC h5 layout or .npy + ids, predictions.csv), tools/evaluate_predictions.py, CD10K
(converter with unique names, several references per query, SSCD's strong_mAP / overall_uAP) and NDEC's
official layout."""

import builtins
import csv
import importlib.util
import os
from pathlib import Path

import rdcd  # noqa: F401
import numpy as np
import pytest
import torch
from PIL import Image

from rdcd.config import add_rdcd_config
from rdcd.datasets import get_copy_detection_dataset
from rdcd.evaluation import evaluate_copy_detection_model
from rdcd.modeling import build_model
from shared.engine import build_cfg
from shared.retrieval.copy_detection import copydays_metrics, trapezoid_average_precision

TOOLS = Path(__file__).resolve().parents[2] / "projects/RDCD/tools"
SYNTHETIC_BASE = Path(__file__).resolve().parents[2] / "projects/RDCD/configs/synthetic/Base-synthetic.yaml"


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "datasets"))
    cfg = build_cfg(
        add_rdcd_config,
        str(SYNTHETIC_BASE),
        [
            "MODEL.META_ARCHITECTURE",
            "SSCD",
            "MODEL.SSCD.NETWORK",
            "sscd_r18",
            "MODEL.SSCD.DIM",
            "16",
            "DATASETS.SYNTHETIC_COPY_DETECTION.NUM_REFERENCES",
            "8",
            "DATASETS.SYNTHETIC_COPY_DETECTION.NUM_MATCHING_QUERIES",
            "4",
            "DATASETS.SYNTHETIC_COPY_DETECTION.NUM_DISTRACTOR_QUERIES",
            "2",
            "DATASETS.SYNTHETIC_COPY_DETECTION.NUM_TRAIN",
            "6",
            "DATASETS.SYNTHETIC_COPY_DETECTION.IMAGE_SIZE",
            "32",
            "INPUT.COPY_DETECTION.TEST_SIZE",
            "32",
            "TEST.COPY_DETECTION.K",
            "3",
            "OUTPUT_DIR",
            str(tmp_path / "out"),
        ],
    )
    torch.manual_seed(0)
    return cfg, build_model(cfg)


def test_eval_export_h5_predictions_and_evaluate_predictions_tool(tiny, capsys):
    h5py = pytest.importorskip("h5py")
    cfg, model = tiny
    metrics = evaluate_copy_detection_model(cfg, model, "synthetic_disc21")
    folder = Path(cfg.OUTPUT_DIR) / "inference" / "synthetic_disc21"
    split = get_copy_detection_dataset("synthetic_disc21", cfg)
    with h5py.File(folder / "descriptors.h5", "r") as f:
        assert set(f) == {"query", "reference", "query_ids", "reference_ids"}
        qids = [b.decode() for b in f["query_ids"][:]]
        assert qids == sorted(i for i, _ in split.images("queries"))
        assert (
            f["query"].dtype == np.float32 and f["query"].shape == (6, 16) and f["reference"].shape == (8, 16)
        )
        np.testing.assert_allclose(np.linalg.norm(f["reference"][:], axis=1), 1.0, rtol=1e-5)
    rows = list(csv.reader(open(folder / "predictions.csv")))
    assert rows[0] == ["query_id", "reference_id", "score"] and len(rows) == 1 + 6 * 3
    assert (folder / "predictions_sn.csv").exists()

    tool = _tool("evaluate_predictions")
    tool.main(
        [
            split.ground_truth_csv,
            str(folder / "predictions_sn.csv"),
            "--json",
            "--references",
            split.reference_dir,
        ]
    )
    scored = __import__("json").loads(capsys.readouterr().out)
    assert scored["uAP"] == pytest.approx(metrics["uAP_sn"], abs=1e-3)  # the CSV reproduces the run's µAPsn

    bad = folder / "bad.csv"
    bad.write_text("query_id,reference_id,score\n" + "".join(f"{q}.jpg,{r},{s}\n" for q, r, s in rows[1:]))
    with pytest.raises(ValueError, match=r"closest known id to 'Q0000\d.jpg' is 'Q0000\d'"):
        tool.main([split.ground_truth_csv, str(bad)])


def test_export_without_h5py_writes_npy_and_ids(tiny, monkeypatch):
    cfg, model = tiny
    real_import = builtins.__import__

    def no_h5py(name, *args, **kwargs):
        if name == "h5py":
            raise ImportError("No module named 'h5py'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_h5py)
    cfg.TEST.COPY_DETECTION.SCORE_NORM = False
    evaluate_copy_detection_model(cfg, model, "synthetic_disc21")
    folder = Path(cfg.OUTPUT_DIR) / "inference" / "synthetic_disc21"
    assert np.load(folder / "reference_descriptors.npy").shape == (8, 16)
    assert (folder / "query_ids.txt").read_text().split() == [
        i for i, _ in get_copy_detection_dataset("synthetic_disc21", cfg).images("queries")
    ]
    assert not (folder / "predictions_sn.csv").exists()


def test_trapezoid_ap_and_copydays_metrics_by_hand():
    # positives at ranks 0 and 2 of 2: (1 + 1) / 4 + (1/2 + 2/3) / 4
    assert trapezoid_average_precision([0, 2], 2) == pytest.approx(0.5 + (0.5 + 2 / 3) / 4)
    assert trapezoid_average_precision([], 3) == 0.0
    scores = np.array([[0.9, 0.5], [0.8, 0.7]])
    hits = np.array([[True, False], [False, True]])
    out = copydays_metrics(scores, hits, positives_per_query=[1, 2], strong=np.array([False, True]))
    assert out["strong_mAP"] == pytest.approx(((0 / 1 + 1 / 2) / 4) * 100)  # query 1: rank 1 of 2 positives
    # pooled order 0.9+, 0.8-, 0.7+, 0.5-; 2 queries -> 2 positives: (1+1)/4 + (1/2 + 2/3)/4
    assert out["overall_uAP"] == pytest.approx((0.5 + (0.5 + 2 / 3) / 4) * 100)


def test_copydays_converter_unique_names_and_several_references(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)

    def image(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(path)

    copydays, distractors = tmp_path / "copydays", tmp_path / "distractors"
    for block in _tool("copydays_to_cd10k").BLOCKS:
        for name in ("200000", "200100", "200101"):
            if block != "strong":
                image(f"{copydays}/{block}/{name}.jpg")
    image(f"{copydays}/strong/200001.jpg")  # first 4 characters "2000": original 200000
    image(f"{copydays}/strong/200102.jpg")  # "2001": originals 200100 and 200101
    for name in ("a", "b"):
        image(f"{distractors}/{name}.jpg")
    out = tmp_path / "datasets" / "CD10K"
    rows = _tool("copydays_to_cd10k").convert(str(copydays), str(distractors), str(out))
    queries = os.listdir(out / "queries")
    assert len(queries) == len(set(queries)) == 19 * 3 + 2  # 19 edited-or-original blocks x 3 + 2 strong
    assert {"jpegqual_3_200000.jpg", "crops_10_200000.jpg", "original_200000.jpg"} <= set(queries)
    assert sorted(r for q, r in rows if q == "strong_200102") == ["200100", "200101"]
    assert [r for q, r in rows if q == "crops_80_200101"] == ["200101"]
    assert sorted(os.listdir(out / "references")) == [
        "200000.jpg",
        "200100.jpg",
        "200101.jpg",
        "distractor_a.jpg",
        "distractor_b.jpg",
    ]

    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "datasets"))
    cfg = build_cfg(
        add_rdcd_config,
        str(SYNTHETIC_BASE),
        [
            "MODEL.META_ARCHITECTURE",
            "SSCD",
            "MODEL.SSCD.NETWORK",
            "sscd_r18",
            "MODEL.SSCD.DIM",
            "8",
            "INPUT.COPY_DETECTION.TEST_SIZE",
            "32",
            "TEST.COPY_DETECTION.K",
            "2",
            "TEST.COPY_DETECTION.EXPORT",
            "False",
            "TEST.COPY_DETECTION.SCORE_NORM",
            "False",
        ],
    )
    metrics = evaluate_copy_detection_model(cfg, build_model(cfg), "cd10k")
    assert {"uAP", "strong_mAP", "overall_uAP"} <= set(metrics)
    assert metrics["uAP"] > 0  # the original_* queries find themselves: several references per query are read


def test_ndec_official_layout(tmp_path, monkeypatch):
    root = tmp_path / "NDEC"
    for folder in ("NDEC_test_query", "DISC/images/references", "DISC/images/train"):
        (root / folder).mkdir(parents=True)
    (root / "public_ground_truth_h5.csv").write_text("query_id,reference_id\nQ1,R1\n")
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    split = get_copy_detection_dataset("ndec", None)
    assert split.query_dir.endswith("NDEC_test_query") and split.reference_dir.endswith(
        "DISC/images/references"
    )
    assert split.ground_truth() == [("Q1", "R1")]
