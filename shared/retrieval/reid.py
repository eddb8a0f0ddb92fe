"""Person / vehicle re-identification metrics with FastReID's protocol.

Protocol (``fastreid.evaluation.rank.evaluate_rank``, market1501 mode): per query, the gallery is sorted by
ascending distance; gallery entries with the query's pid AND camid are removed; queries without any remaining
true match are skipped; CMC = cumsum(matches) clipped to 1, averaged over valid queries; AP = mean over true
matches of the precision at each match's rank; INP = (#true matches) / (1-based rank of the last true match).

Speed: instead of arg-sorting every gallery row (what FastReID's Cython loop does), only the positions of
the true matches are needed. Queries are processed in blocks; the "candidates" of a row are the entries not
farther than its farthest true match (everything else comes after every match).

* Each row's matches are located with one sort: of the block's candidates as 64-bit (row, distance) keys
  when they are few (a good model), else of every row (numpy's vectorised sort; never an argsort). A
  match with distance t comes after the #{g : d_g < t} entries found by a ``searchsorted``, after the entries
  tied with it at a smaller gallery index (block comparisons, only for matches with exact ties), minus the
  junk entries before it (one sort of the block's matches and junk entries by row, distance and index).

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


#: a float32 block whose candidates (entries not farther than the row's farthest true match) are fewer than
#: this fraction of the block sorts only its candidates, as 64-bit (row, distance) keys; denser blocks (and
#: float64 ones) sort every row. A 64-bit key sort costs ~2.4 float32 row sorts per element.
SPARSE_BLOCK_FRACTION = 0.4
#: rows x gallery entries compared at once when locating exactly tied distances (memory of one bool chunk)
TIE_CHUNK_ELEMENTS = 1 << 24


def _nonzero(mask: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a 2-D mask (row-major order) through the 1-D search, which is ~50x faster."""
    return np.divmod(np.flatnonzero(mask), mask.shape[1])


def _row_distance_keys(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """int64 keys ordered like (row, float32 value): the row in the high 32 bits, the float's bits mapped to
    an unsigned integer of the same order in the low ones (sign bit flipped for positives, all bits for
    negatives; -0.0 is first made +0.0)."""
    bits = (values.astype(np.float32) + np.float32(0.0)).view(np.uint32)
    ordered = np.where(bits >> 31 == 1, ~bits, bits | np.uint32(0x80000000))
    return (rows.astype(np.int64) << 32) | ordered.astype(np.int64)


def _count_before(dist: np.ndarray, candidate: np.ndarray, r: np.ndarray, t: np.ndarray):
    """For the matches (row r, distance t): #{g in row r : d_g < t} and #{g in row r : d_g = t}."""
    n_rows = dist.shape[0]
    if dist.dtype == np.float32 and np.count_nonzero(candidate) < SPARSE_BLOCK_FRACTION * candidate.size:
        cr, cc = _nonzero(candidate)
        keys = np.sort(_row_distance_keys(cr, dist[cr, cc]))
        row_start = np.concatenate([[0], np.cumsum(np.count_nonzero(candidate, axis=1))])[r]
        query = _row_distance_keys(r, t)
        left = np.searchsorted(keys, query, side="left")
        return left - row_start, np.searchsorted(keys, query, side="right") - left
    sorted_rows = np.sort(dist, axis=1)
    bounds = np.searchsorted(r, np.arange(n_rows + 1))
    less = np.empty(len(r), dtype=np.int64)
    equal = np.empty(len(r), dtype=np.int64)
    for i in np.flatnonzero(bounds[1:] > bounds[:-1]):  # one searchsorted pair per row with matches
        lo, hi = bounds[i], bounds[i + 1]
        left = np.searchsorted(sorted_rows[i], t[lo:hi], side="left")
        less[lo:hi] = left
        equal[lo:hi] = np.searchsorted(sorted_rows[i], t[lo:hi], side="right") - left
    return less, equal


def block_match_ranks(
    dist: np.ndarray, q_pids: np.ndarray, q_camids: np.ndarray, g_pids: np.ndarray, g_camids: np.ndarray
) -> Tuple[np.ndarray, np.ndarray]:
    """Ranks of the true matches of a block of queries.

    Returns ``(rows, ranks)``: for every true match (same pid, other camera) of every query row, the row index
    and its 0-based position in the row's junk-free gallery order (ascending distance, ties by gallery index),
    sorted by row then rank. Rows without a true match do not appear. With d the row's distances:

    position(r, c) = #{g : d_g < d_c} + #{g < c : d_g = d_c} - #{junk k of row r before c in that order}.

    The first term comes from one sort (of the row, or of the block's candidates) and a ``searchsorted``;
    the second is non-zero only for exact ties and is counted with block comparisons over the tied matches;
    the third from sorting the matches and junk entries of the block together by (row, distance, index).
    """
    same_pid = q_pids[:, None] == g_pids[None, :]
    is_pos = same_pid & (q_camids[:, None] != g_camids[None, :])
    r, c = _nonzero(is_pos)  # by row, then gallery index
    if len(r) == 0:
        return _EMPTY, _EMPTY
    t = dist[r, c]
    farthest = np.full(dist.shape[0], -np.inf)
    np.maximum.at(farthest, r, t)
    candidate = dist <= farthest[:, None]  # everything else comes after every match of its row
    ranks, equal = _count_before(dist, candidate, r, t)
    n_gallery = dist.shape[1]
    tied = np.flatnonzero(equal > 1)  # another entry has exactly the match's distance
    step = max(1, TIE_CHUNK_ELEMENTS // n_gallery)
    columns = np.arange(n_gallery)
    for start in range(0, len(tied), step):
        k = tied[start:start + step]
        ranks[k] += np.count_nonzero((dist[r[k]] == t[k, None]) & (columns < c[k, None]), axis=1)
    jr, jc = _nonzero(same_pid & ~is_pos & candidate)
    if len(jr):
        rows_all = np.concatenate([r, jr])
        order = np.lexsort((np.concatenate([c, jc]), np.concatenate([t, dist[jr, jc]]), rows_all))
        is_junk = (np.arange(len(rows_all)) >= len(r))[order]
        junk_seen = np.cumsum(is_junk) - is_junk
        rows_sorted = rows_all[order]
        junk_before = junk_seen - junk_seen[np.searchsorted(rows_sorted, rows_sorted, side="left")]
        ranks -= junk_before[np.argsort(order)[: len(r)]]
    order = np.lexsort((ranks, r))
    return r[order], ranks[order]


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
