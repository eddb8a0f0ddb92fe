"""Retrieval metrics through the shared module (hand-computed cases) and the retrieval-grid PNG."""
import os

import cv2
import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog

import das  # noqa: F401
from das.config import add_das_config
from das.evaluation import EmbeddedSet, retrieval_metrics
from das.visualization import save_retrieval_grid

from shared.engine import build_cfg
from shared.retrieval.export import CORRECT_COLOR, QUERY_COLOR, WRONG_COLOR

BASE_CONFIG = os.path.join(
    os.path.dirname(__file__), "..", "..", "projects", "DAS", "configs", "Base-DAS.yaml"
)


def _set(embeddings, labels, files=None):
    files = files or [f"img_{i}.jpg" for i in range(len(labels))]
    return EmbeddedSet(np.asarray(embeddings, np.float32), np.asarray(labels), files)


def test_hand_computed_recall_and_perfect_clustering():
    cfg = build_cfg(add_das_config, BASE_CONFIG, opts=["TEST.RETRIEVAL.RECALL_KS", "(1, 2)"])
    # 1-D points: class 0 at 0, 0.1, 5.0 ; class 1 at 5.1, 10, 10.1
    emb = [[0.0], [0.1], [5.0], [5.1], [10.0], [10.1]]
    labels = [0, 0, 0, 1, 1, 1]
    m = retrieval_metrics(cfg, _set(emb, labels))
    # nearest neighbours: 0→1 ✓, 1→0 ✓, 2→3 ✗, 3→2 ✗, 4→5 ✓, 5→4 ✓ ; second neighbours: 2→1 ✓, 3→4 ✓
    assert m["R@1"] == pytest.approx(400 / 6)
    assert m["R@2"] == pytest.approx(100.0)
    assert {"NMI", "F1", "MAP@R", "mAP_c"} <= set(m)
    separated = retrieval_metrics(
        cfg, _set([[0.0], [0.1], [10.0], [10.1], [20.0], [20.2]], [0, 0, 1, 1, 2, 2])
    )
    assert (
        separated["R@1"] == 100
        and separated["NMI"] == pytest.approx(100)
        and separated["F1"] == pytest.approx(100)
    )


def test_query_gallery_protocol():
    cfg = build_cfg(add_das_config, BASE_CONFIG, opts=["TEST.RETRIEVAL.RECALL_KS", "(1, 2)"])
    query = _set([[0.0], [10.0]], [7, 8])
    gallery = _set([[0.2], [9.0], [10.5]], [8, 7, 8])
    m = retrieval_metrics(cfg, query, gallery)
    # query 0 (label 7): gallery order 0.2 (8), 9.0 (7) → miss@1, hit@2 ; query 1 (8): 10.5 (8) → hit@1
    assert m["R@1"] == pytest.approx(50.0) and m["R@2"] == pytest.approx(100.0)


def test_retrieval_sheet_neighbours_frames_and_legend(das_dataset_root, monkeypatch, tmp_path):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(das_dataset_root))
    records = DatasetCatalog.get("synthetic_birds_test")[:6]
    files = [r["file_name"] for r in records]
    # labels 0,0,0,0,1,1 after the first six records (4 images of class 0, 2 of class 1)
    labels = np.array([r["label"] for r in records])
    emb = [[0.0], [1.0], [2.0], [3.0], [0.5], [10.0]]
    path = str(tmp_path / "grid.png")
    nn = save_retrieval_grid(_set(emb, labels, files), None, path, top_k=2, query_indices=[0, 5],
                             title="synthetic_birds_test")
    assert nn.tolist() == [[4, 1], [3, 2]]
    sheet = cv2.imread(path)[:, :, ::-1].reshape(-1, 3).astype(int)

    def pixels_of(rgb):
        return int((np.abs(sheet - np.array(rgb) * 255).max(axis=1) <= 3).sum())

    # query 0 (class 0): neighbour 4 is class 1 -> red, neighbour 1 is class 0 -> green; query 5: two red
    # frames; the legend adds one swatch of each colour
    assert pixels_of(QUERY_COLOR) > 0 and pixels_of(CORRECT_COLOR) > 0
    assert pixels_of(WRONG_COLOR) > 2 * pixels_of(CORRECT_COLOR)


class _NaNModel(torch.nn.Module):
    def forward(self, batch):
        return torch.full((len(batch["labels"]), 4), float("nan"))


def test_non_finite_embeddings_raise(das_dataset_root, monkeypatch):
    from das.evaluation import embed_dataset

    monkeypatch.setenv("DETECTRON2_DATASETS", str(das_dataset_root))
    cfg = build_cfg(add_das_config, BASE_CONFIG, opts=["INPUT.TEST_RESIZE", "32", "INPUT.TEST_SIZE", "32",
                                                       "DATALOADER.NUM_WORKERS", "0"])
    with pytest.raises(FloatingPointError, match="non-finite embeddings on 'synthetic_birds_test'"):
        embed_dataset(cfg, _NaNModel(), "synthetic_birds_test")
