"""Retrieval evaluation of an embedding model with the shared metric-learning metrics.

* CUB200 / CARS196 / SOP: the test set is both query and gallery (self excluded); Recall@K, NMI and F1 (faiss
  k-means, seeded), Musgrave's MAP@R (R = class size − 1) and the Roth/DAS ``mAP_c`` — all in percent, from
  :func:`shared.retrieval.metric_learning.evaluate_embeddings`.
* In-Shop: query→gallery with :func:`shared.retrieval.metric_learning.evaluate_query_gallery` (Recall@K,
  MAP@R).

Every evaluation also writes ``OUTPUT_DIR/inference/<test set>/``: ``embeddings.npy`` + ``ids.txt`` (and
``gallery_embeddings.npy`` + ``gallery_ids.txt`` for In-Shop), ``labels.txt`` / ``gallery_labels.txt`` and
``ranking.csv`` (the ``TEST.RETRIEVAL.RANKING_TOPK`` nearest images of every query by L2 distance, itself
excluded when query and gallery are one set; :mod:`shared.retrieval.export`'s formats).

Embeddings are extracted with detectron2's ``inference_on_dataset`` (eval mode, progress log with ETA). Under
DDP every process embeds a contiguous shard of each test set; the shards are gathered on the main process,
which computes the metrics (the other processes return ``{}``), so every image is embedded once.
"""
from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.evaluation import DatasetEvaluator, inference_on_dataset
from detectron2.utils import comm

from das.datasets import build_test_loader
from shared.engine.predict import output_names
from shared.engine.validation import ConfigValueError
from shared.retrieval.export import rank_gallery, write_embeddings, write_ranking_csv
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
        if not self._embeddings:
            return EmbeddedSet(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), [])
        return EmbeddedSet(torch.cat(self._embeddings).numpy(), torch.cat(self._labels).numpy(), self._files)


def shard_bounds(num_items: int, world_size: int, rank: int) -> Tuple[int, int]:
    """``[start, end)`` of process ``rank``'s contiguous shard; shard sizes differ by at most one."""
    base, extra = divmod(num_items, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def gather_embedded(part: EmbeddedSet) -> Optional[EmbeddedSet]:
    """Concatenate every process's shard in rank order on the main process (``None`` elsewhere)."""
    if comm.get_world_size() == 1:
        return part
    parts = comm.gather(part, dst=0)
    if not comm.is_main_process():
        return None
    return EmbeddedSet(
        np.concatenate([p.embeddings for p in parts]),
        np.concatenate([p.labels for p in parts]),
        [f for p in parts for f in p.file_names],
    )


def embed_dataset(cfg, model: torch.nn.Module, dataset_name: str) -> Optional[EmbeddedSet]:
    """Embeddings of every image of a registered dataset (test transform); under DDP each process embeds its
    shard and the main process gets the whole set (the others ``None``)."""
    records = DatasetCatalog.get(dataset_name)
    if not records:
        raise ValueError(f"test dataset {dataset_name!r} is empty")
    start, end = shard_bounds(len(records), comm.get_world_size(), comm.get_rank())
    collector = EmbeddingCollector()
    if end > start:
        inference_on_dataset(model, build_test_loader(cfg, records[start:end]), collector)
        part = collector.result()
    else:
        part = EmbeddedSet(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), [])
    embedded = gather_embedded(part)
    if embedded is None:
        return None
    if not np.isfinite(embedded.embeddings).all():
        raise FloatingPointError(f"the model produced non-finite embeddings on {dataset_name!r}")
    return embedded


def check_recall_ks(cfg, dataset_name: str, num_query: int, num_gallery: Optional[int] = None) -> None:
    """Every ``TEST.RETRIEVAL.RECALL_KS`` value must be at most the number of images a query can retrieve:
    the gallery size, or the test set's size minus the query itself (``ConfigValueError`` naming the key,
    the set and its size)."""
    searchable = num_gallery if num_gallery is not None else num_query - 1
    largest = max(int(k) for k in cfg.TEST.RETRIEVAL.RECALL_KS)
    if largest > searchable:
        what = (f"the gallery of {num_gallery} images" if num_gallery is not None
                else f"the {num_query} images of the test set minus the query itself")
        raise ConfigValueError("TEST.RETRIEVAL.RECALL_KS", tuple(cfg.TEST.RETRIEVAL.RECALL_KS),
                               f"K={largest} exceeds what a query of {dataset_name!r} can retrieve: "
                               f"{what} ({searchable})")


def check_test_sets(cfg) -> None:
    """:func:`check_recall_ks` for every ``DATASETS.TEST`` entry (and its gallery), from the record counts
    only; run when the trainer is built, before training."""
    galleries = tuple(cfg.DATASETS.TEST_GALLERY)
    for i, name in enumerate(cfg.DATASETS.TEST):
        num_gallery = len(DatasetCatalog.get(galleries[i])) if galleries else None
        check_recall_ks(cfg, name, len(DatasetCatalog.get(name)), num_gallery)


def export_embeddings(cfg, folder: str, query: EmbeddedSet, gallery: Optional[EmbeddedSet] = None) -> None:
    """The files of the module docstring in ``folder``."""
    query_ids = output_names(query.file_names)
    write_embeddings(folder, query_ids, query.embeddings)
    np.savetxt(os.path.join(folder, "labels.txt"), query.labels, fmt="%d")
    target, target_ids, exclude_self = query, query_ids, True
    if gallery is not None:
        target, target_ids, exclude_self = gallery, output_names(gallery.file_names), False
        write_embeddings(folder, target_ids, gallery.embeddings, prefix="gallery_")
        np.savetxt(os.path.join(folder, "gallery_labels.txt"), gallery.labels, fmt="%d")
    distances, order = rank_gallery(query.embeddings, target.embeddings, cfg.TEST.RETRIEVAL.RANKING_TOPK,
                                    "l2", exclude_self=exclude_self)
    write_ranking_csv(os.path.join(folder, "ranking.csv"), query_ids, target_ids, order, distances,
                      query.labels, target.labels)


def retrieval_metrics(cfg, query: EmbeddedSet, gallery: Optional[EmbeddedSet] = None) -> Dict[str, float]:
    """Flat ``{"R@1": .., "NMI": .., ...}`` in percent for one test set (or a query/gallery pair)."""
    ks = tuple(cfg.TEST.RETRIEVAL.RECALL_KS)
    if gallery is None:
        n_clusters = cfg.TEST.RETRIEVAL.NUM_CLUSTERS or None
        result = evaluate_embeddings(query.embeddings, query.labels, recall_ks=ks, compute_map_c=True,
                                     n_clusters=n_clusters, seed=cfg.TEST.RETRIEVAL.KMEANS_SEED)
    else:
        result = evaluate_query_gallery(query.embeddings, query.labels, gallery.embeddings, gallery.labels,
                                        recall_ks=ks)
    return result.as_dict()


def evaluate_retrieval(
    cfg, model: torch.nn.Module, output_dir: Optional[str] = None
) -> "OrderedDict[str, Dict]":
    """``{test set: metrics}`` for every ``DATASETS.TEST`` entry (with its ``DATASETS.TEST_GALLERY`` entry).

    With ``TEST.RETRIEVAL.VIS_QUERIES > 0`` and an ``output_dir``, a top-k retrieval grid PNG is saved for
    each set. Under DDP only the main process returns metrics (the others ``{}``).
    """
    from das.visualization import save_retrieval_grid  # matplotlib only when needed

    galleries = tuple(cfg.DATASETS.TEST_GALLERY)  # one per test set or none (checked in das.config)
    results: "OrderedDict[str, Dict]" = OrderedDict()
    for i, name in enumerate(cfg.DATASETS.TEST):
        query = embed_dataset(cfg, model, name)
        gallery = embed_dataset(cfg, model, galleries[i]) if galleries else None
        if query is None:  # not the main process: its shards went to the main process
            continue
        num_gallery = None if gallery is None else len(gallery.file_names)
        check_recall_ks(cfg, name, len(query.file_names), num_gallery)
        results[name] = retrieval_metrics(cfg, query, gallery)
        if output_dir:
            export_embeddings(cfg, os.path.join(output_dir, "inference", name), query, gallery)
        logger.info("retrieval results on %s: %s", name,
                    ", ".join(f"{k} {v:.2f}" for k, v in results[name].items()))
        if cfg.TEST.RETRIEVAL.VIS_QUERIES > 0 and output_dir:
            path = os.path.join(output_dir, f"retrieval_{name}.png")
            save_retrieval_grid(query, gallery, path, num_queries=cfg.TEST.RETRIEVAL.VIS_QUERIES,
                                top_k=cfg.TEST.RETRIEVAL.VIS_TOPK, seed=cfg.TEST.RETRIEVAL.KMEANS_SEED,
                                title=f"{name}: R@1 {results[name].get('R@1', float('nan')):.1f} %")
            logger.info("retrieval grid saved to %s", path)
    return results
