"""Person / vehicle re-identification metrics with FastReID's protocol (evaluation.md §6).

Protocol (``fastreid.evaluation.rank.evaluate_rank``, market1501 mode): per query, the gallery is sorted by ascending
distance; gallery entries with the query's pid AND camid are removed; queries without any remaining true match are
skipped; CMC = cumsum(matches) clipped to 1, averaged over valid queries; AP = mean over true matches of the
precision at each match's rank; INP = (#true matches) / (1-based rank of the last true match).

Speed: instead of arg-sorting every gallery row (what FastReID's Cython loop does), only the positions of the true
matches are needed. For a query with true-match distances t_1 <= ... <= t_m, the position of match j among all
gallery entries is #{g : d_g < t_j} (+ ties, below), obtained with one ``searchsorted`` of the row into the m
thresholds and a ``bincount``; the same-pid-same-camid entries ("junk") before it are subtracted. That is O(G log m)
per query instead of O(G log G).

Ties: equal distances are ordered by gallery index (a stable sort). FastReID uses numpy's default (unstable)
quicksort, so on rows with exactly tied distances around a true match the two can differ; on tie-free data (any
real-valued descriptors in practice) the CMC is identical and AP/INP agree to float rounding (FastReID accumulates
AP in float32, this module in float64).
"""
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from shared.retrieval._checks import as_1d, as_float32_matrix, check_same_dim

__all__ = [
    "ReIDResult",
    "compute_distmat",
    "evaluate_reid",
    "evaluate_reid_features",
    "reid_match_ranks",
]


@dataclass
class ReIDResult:
    """ReID metrics. ``rank1/5/10``, ``mAP``, ``mINP`` are percent; ``cmc`` is the fraction curve (length max_rank).

    Attributes:
        rank1, rank5, rank10: CMC at ranks 1/5/10 in percent (for galleries smaller than 10 the last CMC value).
        mAP, mINP: mean average precision / mean inverse negative penalty over valid queries, percent.
        cmc: float32 array, cmc[r-1] = fraction of valid queries with a true match within the top r.
        num_valid_queries: queries that kept at least one true match after the same-camera removal.
        all_ap, all_inp: per valid query AP / INP as fractions (query order preserved, invalid queries left out).
    """

    rank1: float
    rank5: float
    rank10: float
    mAP: float
    mINP: float
    cmc: np.ndarray = field(repr=False)
    num_valid_queries: int = 0
    all_ap: np.ndarray = field(default=None, repr=False)
    all_inp: np.ndarray = field(default=None, repr=False)

    @property
    def metric(self) -> float:
        """(mAP + Rank-1) / 2 in percent: FastReID's model-selection metric."""
        return (self.mAP + self.rank1) / 2.0

    def as_dict(self) -> Dict[str, float]:
        """FastReID's ``ReidEvaluator`` result keys (all percent)."""
        return {"Rank-1": self.rank1, "Rank-5": self.rank5, "Rank-10": self.rank10,
                "mAP": self.mAP, "mINP": self.mINP, "metric": self.metric}


@torch.no_grad()
def compute_distmat(query_features: Any, gallery_features: Any, metric: str = "cosine") -> np.ndarray:
    """Query x gallery distance matrix as FastReID's ``build_dist`` computes it (float32 numpy).

    * "cosine": 1 - <q/||q||, g/||g||>.
    * "euclidean": squared Euclidean distance ||q||^2 + ||g||^2 - 2 <q, g> (FastReID takes no square root).
    """
    qf = _as_tensor(query_features, "query_features")
    gf = _as_tensor(gallery_features, "gallery_features")
    if qf.shape[1] != gf.shape[1]:
        raise ValueError(f"query_features have dimension {qf.shape[1]}, gallery_features {gf.shape[1]}")
    if metric == "cosine":
        return (1.0 - F.normalize(qf, p=2, dim=1) @ F.normalize(gf, p=2, dim=1).t()).numpy()
    if metric == "euclidean":
        sq = qf.pow(2).sum(1, keepdim=True) + gf.pow(2).sum(1, keepdim=True).t()
        return torch.addmm(sq, qf, gf.t(), beta=1, alpha=-2).numpy()
    raise ValueError(f"unknown ReID metric {metric!r}; expected 'cosine' or 'euclidean'")


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    return torch.from_numpy(as_float32_matrix(x, name))


class _GalleryIndex:
    """Gallery ids grouped by pid, so each query finds its same-pid gallery entries without scanning the gallery."""

    def __init__(self, g_pids: np.ndarray, g_camids: np.ndarray):
        self.g_camids = g_camids
        order = np.argsort(g_pids, kind="stable")
        sorted_pids = g_pids[order]
        uniq, starts = np.unique(sorted_pids, return_index=True)
        ends = np.append(starts[1:], len(order))
        self._groups = {pid: order[s:e] for pid, s, e in zip(uniq.tolist(), starts, ends)}

    def split(self, pid: Any, camid: Any) -> Tuple[np.ndarray, np.ndarray]:
        """Return (true-match gallery ids, junk gallery ids) for a query: same pid, other / same camera."""
        same_pid = self._groups.get(pid.item() if hasattr(pid, "item") else pid)
        if same_pid is None:
            return _EMPTY, _EMPTY
        same_cam = self.g_camids[same_pid] == camid
        return same_pid[~same_cam], same_pid[same_cam]


_EMPTY = np.zeros(0, dtype=np.int64)


def _ranks_in_row(row: np.ndarray, pos: np.ndarray, junk: np.ndarray) -> np.ndarray:
    """0-based positions of the true matches ``pos`` in the stably sorted, junk-free gallery row (ascending).

    position_j = #{g : d_g < t_j} + #{g < pos_j : d_g = t_j} - #{junk before match j in the stable order}.
    """
    t = row[pos]
    order = np.lexsort((pos, t))  # stable order of the matches: by distance, then gallery index
    pos, t = pos[order], t[order]
    right = np.searchsorted(t, row, side="right")  # #thresholds <= d_g
    less = np.cumsum(np.bincount(right, minlength=len(t) + 1))[: len(t)]  # #{g : d_g < t_j}
    left = np.searchsorted(t, row, side="left")  # #thresholds < d_g
    less_equal = np.cumsum(np.bincount(left, minlength=len(t) + 1))[: len(t)]
    ranks = less.astype(np.int64)
    tied = np.nonzero(less_equal - less > 1)[0]  # other entries share match j's exact distance
    for j in tied:
        ranks[j] += np.count_nonzero(row[: pos[j]] == t[j])
    if len(junk):
        dj = row[junk]
        before = (dj[None, :] < t[:, None]) | ((dj[None, :] == t[:, None]) & (junk[None, :] < pos[:, None]))
        ranks -= before.sum(axis=1)
    return ranks


def reid_match_ranks(
    distmat_rows: np.ndarray, q_pids: np.ndarray, q_camids: np.ndarray, gallery: "_GalleryIndex"
) -> list:
    """For each row, the sorted 0-based ranks of its true matches among valid gallery entries (None if invalid)."""
    out = []
    for i in range(distmat_rows.shape[0]):
        pos, junk = gallery.split(q_pids[i], q_camids[i])
        out.append(_ranks_in_row(distmat_rows[i], pos, junk) if len(pos) else None)
    return out


class _Accumulator:
    """Collects per-query ranks and turns them into CMC / AP / INP exactly like FastReID."""

    def __init__(self, max_rank: int):
        self.max_rank = max_rank
        self.first_hist = np.zeros(max_rank, dtype=np.int64)
        self.ap, self.inp = [], []

    def add(self, ranks: Optional[np.ndarray]) -> None:
        if ranks is None:
            return
        m = len(ranks)
        hits = np.arange(1, m + 1, dtype=np.float64)
        self.ap.append(float(np.mean(hits / (ranks + 1.0))))
        self.inp.append(m / (ranks[-1] + 1.0))
        if ranks[0] < self.max_rank:
            self.first_hist[ranks[0]] += 1

    def result(self) -> ReIDResult:
        n_valid = len(self.ap)
        if n_valid == 0:
            raise ValueError("no query has a true match in the gallery after removing same-pid-same-camid "
                             "entries (all query identities missing from the gallery?)")
        cmc = (np.cumsum(self.first_hist).astype(np.float32) / np.float32(n_valid)).astype(np.float32)
        all_ap = np.asarray(self.ap)
        all_inp = np.asarray(self.inp)

        def at(r: int) -> float:
            return float(cmc[min(r, len(cmc)) - 1]) * 100.0

        return ReIDResult(rank1=at(1), rank5=at(5), rank10=at(10), mAP=float(all_ap.mean()) * 100.0,
                          mINP=float(all_inp.mean()) * 100.0, cmc=cmc, num_valid_queries=n_valid,
                          all_ap=all_ap, all_inp=all_inp)


def _check_ids(q_pids, g_pids, q_camids, g_camids, nq: int, ng: int):
    q_pids = as_1d(q_pids, "q_pids", nq)
    g_pids = as_1d(g_pids, "g_pids", ng)
    q_camids = as_1d(q_camids, "q_camids", nq)
    g_camids = as_1d(g_camids, "g_camids", ng)
    return q_pids, g_pids, q_camids, g_camids


def evaluate_reid(
    distmat: Any,
    q_pids: Sequence,
    g_pids: Sequence,
    q_camids: Sequence,
    g_camids: Sequence,
    max_rank: int = 50,
) -> ReIDResult:
    """CMC / mAP / mINP of a query x gallery distance matrix with FastReID's market1501 protocol.

    Args:
        distmat: [nq, ng] distances (smaller = more similar), float32/float64 numpy or torch; NaN raises.
        q_pids, g_pids, q_camids, g_camids: identity and camera labels of queries / gallery.
        max_rank: CMC length (clipped to the gallery size, as FastReID does).

    Raises:
        ValueError: empty/NaN distmat, label length mismatch, or no query with a valid true match.
    """
    if hasattr(distmat, "detach"):
        distmat = distmat.detach().cpu().numpy()
    distmat = np.asarray(distmat)
    if distmat.ndim != 2 or distmat.shape[0] == 0 or distmat.shape[1] == 0:
        raise ValueError(f"distmat must be a non-empty 2-D [num_query, num_gallery] array, got shape {distmat.shape}")
    if not np.issubdtype(distmat.dtype, np.floating):
        distmat = distmat.astype(np.float64)
    nq, ng = distmat.shape
    q_pids, g_pids, q_camids, g_camids = _check_ids(q_pids, g_pids, q_camids, g_camids, nq, ng)
    acc = _Accumulator(min(int(max_rank), ng))
    gallery = _GalleryIndex(g_pids, g_camids)
    block = 256
    for start in range(0, nq, block):
        rows = distmat[start:start + block]
        if not np.isfinite(rows).all():
            raise ValueError(f"distmat contains NaN or inf (rows {start}..{start + len(rows) - 1})")
        for ranks in reid_match_ranks(rows, q_pids[start:start + block], q_camids[start:start + block], gallery):
            acc.add(ranks)
    return acc.result()


@torch.no_grad()
def evaluate_reid_features(
    query_features: Any,
    gallery_features: Any,
    q_pids: Sequence,
    g_pids: Sequence,
    q_camids: Sequence,
    g_camids: Sequence,
    metric: str = "cosine",
    max_rank: int = 50,
    chunk_size: int = 512,
) -> ReIDResult:
    """End-to-end ReID evaluation from features: distances are computed ``chunk_size`` queries at a time (same
    formula as :func:`compute_distmat`) and ranked immediately, so the full matrix is never held in memory."""
    qf = _as_tensor(query_features, "query_features")
    gf = _as_tensor(gallery_features, "gallery_features")
    check_same_dim(qf, gf, "query_features", "gallery_features")
    nq, ng = qf.shape[0], gf.shape[0]
    q_pids, g_pids, q_camids, g_camids = _check_ids(q_pids, g_pids, q_camids, g_camids, nq, ng)
    if metric == "cosine":
        qf, gf_t = F.normalize(qf, p=2, dim=1), F.normalize(gf, p=2, dim=1).t().contiguous()
    elif metric == "euclidean":
        gf_t, g_sq = gf.t().contiguous(), gf.pow(2).sum(1)[None, :]
    else:
        raise ValueError(f"unknown ReID metric {metric!r}; expected 'cosine' or 'euclidean'")
    acc = _Accumulator(min(int(max_rank), ng))
    gallery = _GalleryIndex(g_pids, g_camids)
    for start in range(0, nq, chunk_size):
        q = qf[start:start + chunk_size]
        if metric == "cosine":
            rows = (1.0 - q @ gf_t).numpy()
        else:
            rows = torch.addmm(q.pow(2).sum(1, keepdim=True) + g_sq, q, gf_t, beta=1, alpha=-2).numpy()
        for ranks in reid_match_ranks(rows, q_pids[start:start + chunk_size],
                                      q_camids[start:start + chunk_size], gallery):
            acc.add(ranks)
    return acc.result()
