"""Person / vehicle re-identification metrics with FastReID's protocol.

Protocol (``fastreid.evaluation.rank.evaluate_rank``, market1501 mode): per query, the gallery is sorted by
ascending distance; gallery entries with the query's pid AND camid are removed; queries without any remaining
true match are skipped; CMC = cumsum(matches) clipped to 1, averaged over valid queries; AP = mean over true
matches of the precision at each match's rank; INP = (#true matches) / (1-based rank of the last true match).

Speed: instead of arg-sorting every gallery row (what FastReID's Cython loop does), only the positions of
the true matches are needed. Queries are processed in blocks; the "candidates" of a row are the entries not
farther than its farthest true match (everything else comes after every match).

* Sparse blocks (few candidates, i.e. a good model): the candidates of all rows are sorted at once by (row,
  distance); a match's position is its index in its row's sorted candidates minus the same-pid-same-camid
  ("junk") entries before it.
* Dense blocks: per row, with true-match distances t_1 <= ... <= t_m, the position of match j is
  #{g : d_g < t_j} (+ ties, below) - #junk before it, from one ``searchsorted`` of the row's candidates into
  the m thresholds and a ``bincount``: O(G log m) per query instead of O(G log G).

Ties: equal distances are ordered by gallery index (a stable sort). FastReID uses numpy's default (unstable)
quicksort, so on rows with exactly tied distances around a true match the two can differ; on tie-free data
(any real-valued descriptors in practice) the CMC is identical and AP/INP agree to float rounding (FastReID
accumulates AP in float32, this module in float64).
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
    "block_match_ranks",
    "rerank_k_reciprocal",
]


@dataclass
class ReIDResult:
    """ReID metrics. ``rank1/5/10``, ``mAP``, ``mINP`` are percent; ``cmc`` is the fraction curve (length
    max_rank).

    Attributes:
        rank1, rank5, rank10: CMC at ranks 1/5/10 in percent (for galleries smaller than 10 the last CMC
            value).
        mAP, mINP: mean average precision / mean inverse negative penalty over valid queries, percent.
        cmc: float32 array, cmc[r-1] = fraction of valid queries with a true match within the top r.
        num_valid_queries: queries that kept at least one true match after the same-camera removal.
        all_ap, all_inp: per valid query AP / INP as fractions (query order preserved, invalid queries left
            out).
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


#: a block whose candidate entries (distance <= the row's farthest true match) exceed this fraction of the
#: block is ranked row by row with searchsorted (O(G log m)); sparser blocks sort only the candidates, all
#: rows at once.
DENSE_BLOCK_FRACTION = 0.01


def _row_ranks_searchsorted(row: np.ndarray, pos: np.ndarray, junk: np.ndarray) -> np.ndarray:
    """0-based positions of the true matches ``pos`` in the stably sorted, junk-free gallery row (ascending).

    position_j = #{g : d_g < t_j} + #{g < pos_j : d_g = t_j} - #{junk before match j in the stable order}.
    """
    t = row[pos]
    order = np.lexsort((pos, t))  # stable order of the matches: by distance, then gallery index
    pos, t = pos[order], t[order]
    row_full = row
    row = row[row <= t[-1]]  # entries beyond the farthest match are after every match
    right = np.searchsorted(t, row, side="right")  # #thresholds <= d_g
    ranks = np.cumsum(np.bincount(right, minlength=len(t) + 1))[: len(t)]  # #{g : d_g < t_j}
    # exact ties: an entry equals a threshold iff it equals t[right - 1]; without ties only the m matches do
    equal = np.count_nonzero(row[right > 0] == t[right[right > 0] - 1])
    if equal != len(t) or (len(t) > 1 and np.any(t[1:] == t[:-1])):
        for j, tj in enumerate(t):  # add the entries tied with match j that come first in gallery order
            ranks[j] += np.count_nonzero(row_full[: pos[j]] == tj)
    if len(junk):
        dj = row_full[junk]
        before = (dj[None, :] < t[:, None]) | ((dj[None, :] == t[:, None]) & (junk[None, :] < pos[:, None]))
        ranks -= before.sum(axis=1)
    return ranks


def block_match_ranks(
    dist: np.ndarray, q_pids: np.ndarray, q_camids: np.ndarray, g_pids: np.ndarray, g_camids: np.ndarray
) -> Tuple[np.ndarray, np.ndarray]:
    """Ranks of the true matches of a block of queries.

    Returns ``(rows, ranks)``: for every true match (same pid, other camera) of every query row, the row index
    and its 0-based position in the row's junk-free gallery order (ascending distance, ties by gallery index),
    sorted by row then rank. Rows without a true match do not appear.
    """
    same_pid = q_pids[:, None] == g_pids[None, :]
    is_pos = same_pid & (q_camids[:, None] != g_camids[None, :])
    farthest = np.where(is_pos, dist, -np.inf).max(axis=1)  # -inf for rows without a true match
    candidate = dist <= farthest[:, None]
    n_cand = int(np.count_nonzero(candidate))
    if n_cand > DENSE_BLOCK_FRACTION * candidate.size:
        rows, ranks = [], []
        for i in np.nonzero(np.isfinite(farthest))[0]:
            r = _row_ranks_searchsorted(dist[i], np.nonzero(is_pos[i])[0],
                                        np.nonzero(same_pid[i] & ~is_pos[i])[0])
            rows.append(np.full(len(r), i))
            ranks.append(r)
        if not rows:
            return _EMPTY, _EMPTY
        return np.concatenate(rows), np.concatenate(ranks)
    # Sparse block: sort only the candidates, by (row, distance); lexsort is stable and np.nonzero yields the
    # columns in increasing order, so equal distances keep the gallery order.
    r, c = np.nonzero(candidate)
    order = np.lexsort((dist[r, c], r))
    r, c = r[order], c[order]
    pos_flag = is_pos[r, c]
    junk_flag = same_pid[r, c] & ~pos_flag
    row_start = np.searchsorted(r, r, side="left")  # first candidate of the same row
    junk_before = np.cumsum(junk_flag) - junk_flag
    junk_before = junk_before - junk_before[row_start]
    rank = np.arange(len(r)) - row_start - junk_before
    return r[pos_flag], rank[pos_flag]


_EMPTY = np.zeros(0, dtype=np.int64)


class _Accumulator:
    """Collects true-match ranks per query and turns them into CMC / AP / INP exactly like FastReID."""

    def __init__(self, max_rank: int):
        self.max_rank = max_rank
        self.first_hist = np.zeros(max_rank, dtype=np.int64)
        self.ap, self.inp = [], []

    def add_block(self, rows: np.ndarray, ranks: np.ndarray) -> None:
        """``rows``/``ranks`` as returned by :func:`block_match_ranks` (sorted by row, then rank)."""
        if len(rows) == 0:
            return
        uniq, first_idx, m = np.unique(rows, return_index=True, return_counts=True)
        # 1-based index of each match within its row
        hit_no = np.arange(len(rows)) - np.repeat(first_idx, m) + 1
        precision_sum = np.add.reduceat(hit_no / (ranks + 1.0), first_idx)
        self.ap.append(precision_sum / m)  # AP = mean over matches of precision at the match
        last = ranks[first_idx + m - 1]
        self.inp.append(m / (last + 1.0))  # INP = #matches / (1-based rank of the last match)
        first = ranks[first_idx]
        self.first_hist += np.bincount(first[first < self.max_rank], minlength=self.max_rank)

    def result(self) -> ReIDResult:
        all_ap = np.concatenate(self.ap) if self.ap else np.zeros(0)
        all_inp = np.concatenate(self.inp) if self.inp else np.zeros(0)
        n_valid = len(all_ap)
        if n_valid == 0:
            raise ValueError("no query has a true match in the gallery after removing same-pid-same-camid "
                             "entries (all query identities missing from the gallery?)")
        cmc = (np.cumsum(self.first_hist).astype(np.float32) / np.float32(n_valid)).astype(np.float32)

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
    block_size: int = 128,
) -> ReIDResult:
    """CMC / mAP / mINP of a query x gallery distance matrix with FastReID's market1501 protocol.

    Args:
        distmat: [nq, ng] distances (smaller = more similar), float32/float64 numpy or torch; NaN raises.
        q_pids, g_pids, q_camids, g_camids: identity and camera labels of queries / gallery.
        max_rank: CMC length (clipped to the gallery size, as FastReID does).
        block_size: query rows processed together (memory ~ a few bool copies of block_size x num_gallery).

    Raises:
        ValueError: empty/NaN distmat, label length mismatch, or no query with a valid true match.
    """
    if hasattr(distmat, "detach"):
        distmat = distmat.detach().cpu().numpy()
    distmat = np.asarray(distmat)
    if distmat.ndim != 2 or distmat.shape[0] == 0 or distmat.shape[1] == 0:
        raise ValueError("distmat must be a non-empty 2-D [num_query, num_gallery] array, got shape "
                         f"{distmat.shape}")
    if not np.issubdtype(distmat.dtype, np.floating):
        distmat = distmat.astype(np.float64)
    nq, ng = distmat.shape
    q_pids, g_pids, q_camids, g_camids = _check_ids(q_pids, g_pids, q_camids, g_camids, nq, ng)
    acc = _Accumulator(min(int(max_rank), ng))
    for start in range(0, nq, block_size):
        rows = distmat[start:start + block_size]
        if not np.isfinite(rows).all():
            raise ValueError(f"distmat contains NaN or inf (rows {start}..{start + len(rows) - 1})")
        sl = slice(start, start + block_size)
        acc.add_block(*block_match_ranks(rows, q_pids[sl], q_camids[sl], g_pids, g_camids))
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
    chunk_size: Optional[int] = None,
    max_chunk_bytes: int = 1 << 30,
    block_size: int = 128,
) -> ReIDResult:
    """End-to-end ReID evaluation from features, with the formula of :func:`compute_distmat`.

    Distances are computed ``chunk_size`` queries at a time (default: as many as fit in ``max_chunk_bytes``
    of float32, i.e. the whole Market-1501 matrix in one matrix product, like FastReID) and ranked
    ``block_size`` rows at a time, so memory stays bounded for any number of queries."""
    qf = _as_tensor(query_features, "query_features")
    gf = _as_tensor(gallery_features, "gallery_features")
    check_same_dim(qf, gf, "query_features", "gallery_features")
    nq, ng = qf.shape[0], gf.shape[0]
    q_pids, g_pids, q_camids, g_camids = _check_ids(q_pids, g_pids, q_camids, g_camids, nq, ng)
    if metric == "cosine":
        qf, gf_t = F.normalize(qf, p=2, dim=1), F.normalize(gf, p=2, dim=1).t()
    elif metric == "euclidean":
        gf_t, g_sq = gf.t(), gf.pow(2).sum(1)[None, :]
    else:
        raise ValueError(f"unknown ReID metric {metric!r}; expected 'cosine' or 'euclidean'")
    if chunk_size is None:
        chunk_size = max(block_size, int(max_chunk_bytes // (4 * ng)))
    acc = _Accumulator(min(int(max_rank), ng))
    for start in range(0, nq, chunk_size):
        q = qf[start:start + chunk_size]
        if metric == "cosine":
            rows = (1.0 - torch.mm(q, gf_t)).numpy()
        else:
            rows = torch.addmm(q.pow(2).sum(1, keepdim=True) + g_sq, q, gf_t, beta=1, alpha=-2).numpy()
        for b in range(0, len(rows), block_size):
            block = rows[b:b + block_size]
            sl = slice(start + b, start + b + len(block))
            acc.add_block(*block_match_ranks(block, q_pids[sl], q_camids[sl], g_pids, g_camids))
    return acc.result()


@torch.no_grad()
def rerank_k_reciprocal(
    query_features: Any,
    gallery_features: Any,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    metric: str = "cosine",
) -> np.ndarray:
    """Re-ranked query x gallery distance, as FastReID's ``ReidEvaluator`` with ``TEST.RERANK.ENABLED``, on
    the CPU:
    ``(1 - lambda) * jaccard + lambda * compute_distmat(q, g, metric)``, the Jaccard distance computed on the
    L2-normalised features for the cosine metric (see :mod:`shared.retrieval.rerank`). Defaults k1 20, k2 6,
    lambda 0.3."""
    from shared.retrieval.rerank import jaccard_distance

    qf = as_float32_matrix(query_features, "query_features")
    gf = as_float32_matrix(gallery_features, "gallery_features")
    check_same_dim(qf, gf, "query_features", "gallery_features")
    original = compute_distmat(qf, gf, metric)
    feats = torch.cat([torch.from_numpy(qf), torch.from_numpy(gf)])
    if metric == "cosine":
        feats = F.normalize(feats, p=2, dim=1)
    jaccard = jaccard_distance(feats.numpy(), qf.shape[0], k1=k1, k2=k2)
    return jaccard * (1.0 - lambda_value) + original * lambda_value
