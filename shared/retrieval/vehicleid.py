"""VehicleID small / medium / large protocol with a fixed, reported seed.

FastReID's ``VehicleID`` dataset shuffles the test list with Python's unseeded ``random.shuffle`` and then
puts the first image of every vehicle id into the gallery and the rest into the queries, so its numbers vary
from run to run. Here the shuffle is a ``numpy.random.default_rng(seed).permutation``; ``num_splits > 1``
averages seeds ``seed, seed + 1, ...``. camid = image index, so FastReID's same-pid-same-camid removal removes
nothing.
"""
import os
from typing import Any, Dict, Sequence, Tuple

import numpy as np

from shared.retrieval._checks import as_1d, as_float32_matrix
from shared.retrieval.reid import ReIDResult, evaluate_reid_features

__all__ = ["VEHICLEID_TEST_LISTS", "read_vehicleid_test_list", "vehicleid_split", "evaluate_vehicleid"]

#: protocol name -> (file under ``train_test_split/``, number of test ids)
VEHICLEID_TEST_LISTS: Dict[str, Tuple[str, int]] = {
    "small": ("test_list_800.txt", 800),
    "medium": ("test_list_1600.txt", 1600),
    "large": ("test_list_2400.txt", 2400),
}


def read_vehicleid_test_list(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """Parse a VehicleID list file (lines ``<image id> <vehicle id>``) into (image ids as str, vehicle
    ids)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"VehicleID test list not found: {path}")
    images, vids = [], []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise ValueError(f"{path}:{lineno}: expected '<image id> <vehicle id>', got {line.strip()!r}")
            images.append(parts[0])
            vids.append(int(parts[1]))
    return np.asarray(images), np.asarray(vids, dtype=np.int64)


def vehicleid_split(pids: Sequence, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """(query indices, gallery indices): after a seeded shuffle, the first image of every id is its gallery
    image."""
    pids = as_1d(pids, "pids")
    if len(pids) == 0:
        raise ValueError("pids is empty")
    order = np.random.default_rng(seed).permutation(len(pids))
    _, first = np.unique(pids[order], return_index=True)
    is_gallery = np.zeros(len(pids), dtype=bool)
    is_gallery[first] = True
    return order[~is_gallery], order[is_gallery]


def evaluate_vehicleid(
    features: Any, pids: Sequence, seed: int = 0, num_splits: int = 1, metric: str = "cosine",
    max_rank: int = 50,
) -> ReIDResult:
    """ReID metrics on a VehicleID test list, averaged over ``num_splits`` seeded query/gallery splits.

    ``cmc``, ``rank*``, ``mAP``, ``mINP`` are averages over splits; ``all_ap``/``all_inp`` are concatenated.
    """
    x = as_float32_matrix(features, "features")
    pids = as_1d(pids, "pids", x.shape[0])
    if num_splits < 1:
        raise ValueError(f"num_splits must be >= 1, got {num_splits}")
    camids = np.arange(len(pids))
    results = []
    for split in range(num_splits):
        q, g = vehicleid_split(pids, seed + split)
        if len(q) == 0:
            raise ValueError("every vehicle id has a single image: no query left")
        results.append(evaluate_reid_features(x[q], x[g], pids[q], pids[g], camids[q], camids[g],
                                              metric=metric, max_rank=max_rank))
    if num_splits == 1:
        return results[0]

    def mean(name: str) -> float:
        return float(np.mean([getattr(r, name) for r in results]))

    return ReIDResult(rank1=mean("rank1"), rank5=mean("rank5"), rank10=mean("rank10"), mAP=mean("mAP"),
                      mINP=mean("mINP"), cmc=np.mean([r.cmc for r in results], axis=0).astype(np.float32),
                      num_valid_queries=int(np.mean([r.num_valid_queries for r in results])),
                      all_ap=np.concatenate([r.all_ap for r in results]),
                      all_inp=np.concatenate([r.all_inp for r in results]))
