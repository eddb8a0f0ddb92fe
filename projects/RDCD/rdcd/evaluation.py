"""Copy-detection evaluation of a descriptor model: embed queries / references / background images, then
score with the shared DISC21 metrics (``shared.retrieval.copy_detection``): µAP, µAPsn, recall@P90,
accuracy@1, optionally after PCA-whitening trained on the background descriptors."""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Callable, Dict, List

import numpy as np
import torch
from detectron2.utils import comm
from detectron2.utils.logger import log_every_n_seconds

from rdcd.datasets import build_inference_loader, get_copy_detection_dataset
from rdcd.transforms import build_test_transform
from shared.retrieval.copy_detection import evaluate_copy_detection

logger = logging.getLogger(__name__)


@torch.no_grad()
def extract_descriptors(
    model: torch.nn.Module, paths: List[str], transform: Callable, batch_size: int = 64, num_workers: int = 0
) -> np.ndarray:
    """Eval-mode ``model(images)`` for every path, in order, as float32 [N, D] (gathered across processes).

    A non-finite descriptor raises ``FloatingPointError`` instead of silently corrupting the metrics.
    """
    was_training = model.training
    model.eval()
    loader = build_inference_loader(paths, transform, batch_size, num_workers)
    chunks, start = [], time.perf_counter()
    for i, images in enumerate(loader):
        chunks.append(model(images).float().cpu())
        log_every_n_seconds(logging.INFO, f"descriptors: batch {i + 1}/{len(loader)}", n=10, name=__name__)
    model.train(was_training)
    local = torch.cat(chunks) if chunks else torch.zeros(0, 0)
    parts = comm.all_gather(local)  # InferenceSampler shards contiguous ranges in rank order
    descriptors = torch.cat([p for p in parts if p.numel()]).numpy().astype(np.float32)
    if not np.isfinite(descriptors).all():
        raise FloatingPointError("the model produced NaN/inf descriptors")
    logger.info("extracted %d descriptors of dim %d in %.1fs", *descriptors.shape, time.perf_counter() - start)
    return descriptors


def _background_subset(items: list, limit: int) -> list:
    """At most ``limit`` evenly spaced items (all when ``limit`` <= 0)."""
    if limit <= 0 or limit >= len(items):
        return items
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def evaluate_copy_detection_model(cfg, model: torch.nn.Module, dataset_name: str) -> Dict[str, float]:
    """Metrics (percent) of ``model`` on dataset ``dataset_name``; empty dict on non-main processes.

    Also records the descriptor dimension and the number of background images used for score
    normalisation / PCA-whitening, since subsets change the numbers.
    """
    tc = cfg.TEST.COPY_DETECTION
    split = get_copy_detection_dataset(dataset_name, cfg)
    gt = split.ground_truth()
    transform = build_test_transform(cfg)
    # short-side resizing keeps aspect ratios, so images of one batch may differ in shape
    batch_size = 1 if cfg.INPUT.COPY_DETECTION.TEST_RESIZE == "short_side" else tc.BATCH_SIZE

    def embed(items):
        return extract_descriptors(model, [p for _, p in items], transform, batch_size, cfg.DATALOADER.NUM_WORKERS)

    queries, references = split.images("queries"), split.images("references")
    q, r = embed(queries), embed(references)
    background = None
    if tc.SCORE_NORM or tc.PCAW_DIM > 0:
        background_items = _background_subset(split.images("train"), tc.BACKGROUND_SUBSET)
        background = embed(background_items)
    if not comm.is_main_process():
        return {}
    codec = f"PCAW{tc.PCAW_DIM},L2norm,Flat" if tc.PCAW_DIM > 0 else "Flat"
    result = evaluate_copy_detection(
        q, r, gt, query_ids=[i for i, _ in queries], reference_ids=[i for i, _ in references], k=tc.K,
        background_descriptors=background if tc.SCORE_NORM else None, beta=tc.BETA, sn_k=tc.NORM_K,
        codec=codec, codec_train=background,
    )
    metrics = OrderedDict(result.as_dict())
    metrics["descriptor_dim"] = float(q.shape[1])
    metrics["num_background"] = float(0 if background is None else len(background))
    return metrics


def evaluate_on_test_sets(cfg, model: torch.nn.Module) -> Dict[str, Dict[str, float]]:
    """``{dataset: metrics}`` for every ``DATASETS.TEST`` entry, logged as a table."""
    results = OrderedDict()
    for name in cfg.DATASETS.TEST:
        results[name] = evaluate_copy_detection_model(cfg, model, name)
        if results[name]:
            logger.info("copy detection on %s: %s", name,
                        ", ".join(f"{k}={v:.2f}" for k, v in results[name].items()))
    return results
