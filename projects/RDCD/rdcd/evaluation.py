"""Copy-detection evaluation of a descriptor model: embed queries / references / background images, score with
the shared DISC21 metrics (``shared.retrieval.copy_detection``: µAP, µAPsn, recall@P90, accuracy@1, optionally
after PCA-whitening trained on the background descriptors) and export what was computed.

Descriptors are gathered to the main process only (every other rank keeps just its shard), so at DISC21 scale
one process holds the 1M reference descriptors once, not every process.

Export (``TEST.COPY_DETECTION.EXPORT``), per dataset in ``OUTPUT_DIR/inference/<dataset>/``:

* ``descriptors.h5`` in the ISC 2021 descriptor-track layout (isc2021 ``scripts/convert_track2_format.py``):
  datasets ``query``, ``reference`` (float32 [n, d]) and ``query_ids``, ``reference_ids`` (ASCII bytes), rows
  sorted by id; without h5py: ``query_descriptors.npy``, ``reference_descriptors.npy``, ``query_ids.txt``,
  ``reference_ids.txt`` (one id per line, same order);
* ``predictions.csv`` (raw scores) and, with score normalisation, ``predictions_sn.csv``: header
  ``query_id,reference_id,score`` as isc2021 ``isc/io.py`` writes it, readable by
  ``tools/evaluate_predictions.py`` and by isc2021's own scripts.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from detectron2.utils import comm
from detectron2.utils.logger import log_every_n_seconds

from rdcd.datasets import build_inference_loader, get_copy_detection_dataset
from rdcd.transforms import build_test_transform
from shared.atomic_io import atomic_open
from shared.retrieval.copy_detection import Predictions, evaluate_copy_detection

logger = logging.getLogger(__name__)


@torch.no_grad()
def extract_descriptors(
    model: torch.nn.Module, paths: List[str], transform: Callable, batch_size: int = 64, num_workers: int = 0
) -> Optional[np.ndarray]:
    """Eval-mode ``model(images)`` for every path, in order, as float32 [N, D] on the main process (``None``
    on the others: each rank sends its shard to rank 0 only).

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
    parts = comm.gather(local, dst=0)  # InferenceSampler shards contiguous ranges in rank order
    if not comm.is_main_process():
        return None
    descriptors = torch.cat([p for p in parts if p.numel()]).numpy().astype(np.float32)
    if not np.isfinite(descriptors).all():
        raise FloatingPointError("the model produced NaN/inf descriptors (diverged training? check "
                                 "SOLVER.BASE_LR against SOLVER.IMS_PER_BATCH)")
    logger.info(
        "extracted %d descriptors of dim %d in %.1fs", *descriptors.shape, time.perf_counter() - start
    )
    return descriptors


def _background_subset(items: list, limit: int) -> list:
    """At most ``limit`` evenly spaced items (all when ``limit`` <= 0)."""
    if limit <= 0 or limit >= len(items):
        return items
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def write_descriptors(
    folder: str,
    query_ids: Sequence[str],
    queries: np.ndarray,
    reference_ids: Sequence[str],
    references: np.ndarray,
) -> List[str]:
    """Write the descriptors in the ISC h5 layout (``.npy`` + ids without h5py); returns the files written."""
    os.makedirs(folder, exist_ok=True)
    try:
        import h5py
    except ImportError:
        h5py = None
    if h5py is None:
        files = []
        for part, ids, x in (("query", query_ids, queries), ("reference", reference_ids, references)):
            np.save(
                os.path.join(folder, f"{part}_descriptors.npy"), np.ascontiguousarray(x, dtype=np.float32)
            )
            with atomic_open(os.path.join(folder, f"{part}_ids.txt"), "w") as f:
                f.writelines(f"{i}\n" for i in ids)
            files += [f"{part}_descriptors.npy", f"{part}_ids.txt"]
        return [os.path.join(folder, f) for f in files]
    path = os.path.join(folder, "descriptors.h5")
    with h5py.File(path, "w") as f:
        for part, ids, x in (("query", query_ids, queries), ("reference", reference_ids, references)):
            names = np.array([str(i).encode("ascii") for i in ids])
            order = np.argsort(names, kind="stable")
            f.create_dataset(part, data=np.ascontiguousarray(x[order], dtype=np.float32))
            f.create_dataset(f"{part}_ids", data=names[order])
    return [path]


def format_score(score: float) -> str:
    """The shortest decimal that reads back as exactly ``score`` (Python's ``repr`` of a float64).

    isc2021 writes 6 decimals, which makes distinct scores equal (ties count as negatives first in µAP), so a
    re-scored CSV would not reproduce the run's µAP; full precision does, and isc2021's reader
    (``float(score)``) reads it unchanged."""
    return repr(float(score))


def write_predictions(path: str, predictions: Predictions) -> None:
    """``query_id,reference_id,score`` CSV, best score first (isc2021's format, scores at full precision:
    :func:`format_score`)."""
    order = np.argsort(-predictions.score, kind="stable")
    with atomic_open(path, "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["query_id", "reference_id", "score"])
        for i in order:
            score = format_score(predictions.score[i])
            writer.writerow([predictions.query[i], predictions.reference[i], score])


def evaluate_copy_detection_model(cfg, model: torch.nn.Module, dataset_name: str) -> Dict[str, float]:
    """Metrics (percent) of ``model`` on dataset ``dataset_name``; empty dict on non-main processes.

    Also records the descriptor dimension and the number of background images used for score
    normalisation / PCA-whitening, since subsets change the numbers; exports when
    ``TEST.COPY_DETECTION.EXPORT``.
    """
    tc = cfg.TEST.COPY_DETECTION
    split = get_copy_detection_dataset(dataset_name, cfg)
    gt = split.ground_truth()
    transform = build_test_transform(cfg)
    # short-side resizing keeps aspect ratios, so images of one batch may differ in shape
    batch_size = 1 if cfg.INPUT.COPY_DETECTION.TEST_RESIZE == "short_side" else tc.BATCH_SIZE

    def embed(items):
        return extract_descriptors(
            model, [p for _, p in items], transform, batch_size, cfg.DATALOADER.NUM_WORKERS
        )

    queries, references = split.images("queries"), split.images("references")
    q, r = embed(queries), embed(references)
    background = None
    if tc.SCORE_NORM or tc.PCAW_DIM > 0:
        background = embed(_background_subset(split.images("train"), tc.BACKGROUND_SUBSET))
    if not comm.is_main_process():
        return {}
    codec = f"PCAW{tc.PCAW_DIM},L2norm,Flat" if tc.PCAW_DIM > 0 else "Flat"
    query_ids, reference_ids = [i for i, _ in queries], [i for i, _ in references]
    common = dict(
        query_ids=query_ids,
        reference_ids=reference_ids,
        k=tc.K,
        codec=codec,
        codec_train=background,
        candidates=tc.CANDIDATES,
        return_predictions=True,
    )
    result, raw_predictions = evaluate_copy_detection(q, r, gt, **common)
    sn_predictions = None
    if tc.SCORE_NORM:
        result, sn_predictions = evaluate_copy_detection(
            q, r, gt, background_descriptors=background, beta=tc.BETA, sn_k=tc.NORM_K, **common
        )
    metrics = OrderedDict(result.as_dict())
    metrics["descriptor_dim"] = float(q.shape[1])
    metrics["num_background"] = float(0 if background is None else len(background))
    metrics.update(split.extra_metrics(q, r, query_ids, reference_ids, tc.K))
    if tc.EXPORT:
        folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        files = write_descriptors(folder, query_ids, q, reference_ids, r)
        write_predictions(os.path.join(folder, "predictions.csv"), raw_predictions)
        files.append(os.path.join(folder, "predictions.csv"))
        if sn_predictions is not None:
            write_predictions(os.path.join(folder, "predictions_sn.csv"), sn_predictions)
            files.append(os.path.join(folder, "predictions_sn.csv"))
        logger.info("exported %s", ", ".join(files))
    return metrics


#: metrics that are counts, not percentages
COUNT_METRICS = ("descriptor_dim", "num_background")


def _formatted(key: str, value: float) -> str:
    """``uAP=62.90 %`` (metrics are percentages; isc2021 prints the same numbers as fractions, 0.6290) or
    ``descriptor_dim=64`` for counts."""
    return f"{key}={value:g}" if key in COUNT_METRICS else f"{key}={value:.2f} %"


def evaluate_on_test_sets(cfg, model: torch.nn.Module) -> Dict[str, Dict[str, float]]:
    """``{dataset: metrics}`` for every ``DATASETS.TEST`` entry, logged as a table."""
    results = OrderedDict()
    for name in cfg.DATASETS.TEST:
        results[name] = evaluate_copy_detection_model(cfg, model, name)
        if results[name]:
            logger.info("copy detection on %s: %s", name,
                        ", ".join(_formatted(k, v) for k, v in results[name].items()))
    return results
