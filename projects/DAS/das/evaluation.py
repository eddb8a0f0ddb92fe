"""Retrieval evaluation of an embedding model with the shared metric-learning metrics (evaluation.md §7).

* CUB200 / CARS196 / SOP: the test set is both query and gallery (self excluded); Recall@K, NMI and F1 (faiss
  k-means, seeded), Musgrave's MAP@R (R = class size − 1) and the Roth/DAS ``mAP_c`` — all in percent, from
  :func:`shared.retrieval.metric_learning.evaluate_embeddings`.
* In-Shop: query→gallery with :func:`shared.retrieval.metric_learning.evaluate_query_gallery` (Recall@K, MAP@R).

Embeddings are extracted with detectron2's ``inference_on_dataset`` (eval mode, progress log with ETA).
"""
from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.evaluation import DatasetEvaluator, inference_on_dataset

from das.data import build_test_loader
from shared.retrieval.metric_learning import evaluate_embeddings, evaluate_query_gallery

logger = logging.getLogger(__name__)


@dataclass
class EmbeddedSet:
    """Embeddings [n, D] with their labels and image files, in dataset order."""

    embeddings: np.ndarray
    labels: np.ndarray
    file_names: List[str]


class EmbeddingCollector(DatasetEvaluator):
    """A ``DatasetEvaluator`` that only gathers the model's embeddings (metrics are computed afterwards)."""

    def reset(self) -> None:
        self._embeddings: List[torch.Tensor] = []
        self._labels: List[torch.Tensor] = []
        self._files: List[str] = []

    def process(self, inputs, outputs) -> None:
        self._embeddings.append(outputs.detach().float().cpu())
        self._labels.append(inputs["labels"])
        self._files.extend(inputs["file_names"])

    def evaluate(self):
        return {}

    def result(self) -> EmbeddedSet:
        return EmbeddedSet(torch.cat(self._embeddings).numpy(), torch.cat(self._labels).numpy(), self._files)


def embed_dataset(cfg, model: torch.nn.Module, dataset_name: str) -> EmbeddedSet:
    """Embeddings of every image of a registered dataset (test transform)."""
    records = DatasetCatalog.get(dataset_name)
    if not records:
        raise ValueError(f"test dataset {dataset_name!r} is empty")
    collector = EmbeddingCollector()
    inference_on_dataset(model, build_test_loader(cfg, records), collector)
    embedded = collector.result()
    if not np.isfinite(embedded.embeddings).all():
        raise FloatingPointError(f"the model produced non-finite embeddings on {dataset_name!r}")
    return embedded


def retrieval_metrics(cfg, query: EmbeddedSet, gallery: Optional[EmbeddedSet] = None) -> Dict[str, float]:
    """Flat ``{"R@1": .., "NMI": .., "F1": .., "MAP@R": .., ...}`` in percent for one test set (or query/gallery)."""
    ks = tuple(cfg.TEST.RETRIEVAL.RECALL_KS)
    if gallery is None:
        n_clusters = cfg.TEST.RETRIEVAL.NUM_CLUSTERS or None
        result = evaluate_embeddings(query.embeddings, query.labels, recall_ks=ks, compute_map_c=True,
                                     n_clusters=n_clusters, seed=cfg.TEST.RETRIEVAL.KMEANS_SEED)
    else:
        result = evaluate_query_gallery(query.embeddings, query.labels, gallery.embeddings, gallery.labels,
                                        recall_ks=ks)
    return result.as_dict()


def evaluate_retrieval(cfg, model: torch.nn.Module, output_dir: Optional[str] = None) -> "OrderedDict[str, Dict]":
    """``{test set: metrics}`` for every ``DATASETS.TEST`` entry (paired with ``DATASETS.TEST_GALLERY`` if set).

    With ``TEST.RETRIEVAL.VIS_QUERIES > 0`` and an ``output_dir``, a top-k retrieval grid PNG is saved per set.
    """
    from das.visualization import save_retrieval_grid  # matplotlib only when needed

    galleries = tuple(cfg.DATASETS.TEST_GALLERY)
    if galleries and len(galleries) != len(cfg.DATASETS.TEST):
        raise ValueError("DATASETS.TEST_GALLERY must list one gallery per DATASETS.TEST entry (or be empty)")
    results: "OrderedDict[str, Dict]" = OrderedDict()
    for i, name in enumerate(cfg.DATASETS.TEST):
        query = embed_dataset(cfg, model, name)
        gallery = embed_dataset(cfg, model, galleries[i]) if galleries else None
        results[name] = retrieval_metrics(cfg, query, gallery)
        logger.info("retrieval results on %s: %s", name,
                    ", ".join(f"{k} {v:.2f}" for k, v in results[name].items()))
        if cfg.TEST.RETRIEVAL.VIS_QUERIES > 0 and output_dir:
            path = os.path.join(output_dir, f"retrieval_{name}.png")
            save_retrieval_grid(query, gallery, path, num_queries=cfg.TEST.RETRIEVAL.VIS_QUERIES,
                                top_k=cfg.TEST.RETRIEVAL.VIS_TOPK, seed=cfg.TEST.RETRIEVAL.KMEANS_SEED)
            logger.info("retrieval grid saved to %s", path)
    return results
