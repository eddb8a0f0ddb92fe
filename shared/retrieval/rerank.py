"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) as FastReID's ``compute_jaccard_distance`` defines it,
on the CPU.

FastReID 1.4.0 hard-codes GPU faiss and ``.cuda()`` for this step and builds dense N x N matrices; here the
same quantities are computed with faiss on the CPU and scipy sparse matrices, and only the query x gallery
block of the Jaccard distance is formed.

With features f (L2-normalised first for the cosine metric), N = num_query + num_gallery:

1. ``initial_rank``: the k1 nearest neighbours of every point among all N (exact squared L2, faiss), self
   included.
2. R(i, k): k-reciprocal neighbours, the j among the first k+1 (at most k1) neighbours of i that have i among
   their own first k+1 neighbours; R(i) = R(i, k1), R_half(i) = R(i, round(k1 / 2)).
3. Expansion: E(i) = R(i) united with every R_half(c), c in R(i), for which
   |R_half(c) & R(i)| > 2/3 |R_half(c)|.
4. V[i, j] = softmax_{j in E(i)}(-||f_i - f_j||^2), zero outside E(i).
5. Local query expansion: V <- mean of the rows V[initial_rank[i, :k2]] (skipped when k2 = 1).
6. Jaccard distance d_J(i, j) = 1 - m / (2 - m), m = sum_l min(V[i, l], V[j, l]); clipped at 0.
"""
from typing import Tuple

import faiss
import numpy as np
import scipy.sparse as sp

__all__ = ["k_reciprocal_neighbours", "jaccard_distance"]


def _reciprocal(initial_rank: np.ndarray, k: int) -> sp.csr_matrix:
    """Boolean sparse matrix, row i = R(i, k) (the first min(k + 1, k1) neighbours that see i back)."""
    n = initial_rank.shape[0]
    width = min(k + 1, initial_rank.shape[1])
    forward = initial_rank[:, :width]  # [N, w]
    backward = initial_rank[forward][:, :, :width]  # [N, w, w]
    keep = (backward == np.arange(n)[:, None, None]).any(axis=2)
    rows = np.broadcast_to(np.arange(n)[:, None], forward.shape)[keep]
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, forward[keep])), shape=(n, n))


def k_reciprocal_neighbours(features: np.ndarray, k1: int) -> Tuple[np.ndarray, sp.csr_matrix]:
    """``initial_rank`` [N, k1] (faiss exact L2) and the expanded k-reciprocal sets E as a boolean CSR
    matrix."""
    n, d = features.shape
    if not 1 <= k1 <= n:
        raise ValueError(f"k1={k1} must be in [1, number of features = {n}]")
    index = faiss.IndexFlatL2(d)
    index.add(features)
    _, initial_rank = index.search(features, k1)
    r_full = _reciprocal(initial_rank, k1)
    r_half = _reciprocal(initial_rank, int(np.around(k1 / 2)))
    overlap = (r_full @ r_half.T).multiply(r_full).tocsr()  # (i, c) -> |R(i) & R_half(c)| for c in R(i)
    overlap.eliminate_zeros()
    rows = np.repeat(np.arange(n), np.diff(overlap.indptr))
    cand = overlap.indices
    half_size = np.asarray(r_half.sum(axis=1)).ravel()
    accept = overlap.data > (2.0 / 3.0) * half_size[cand]
    accepted = sp.csr_matrix((np.ones(int(accept.sum()), dtype=np.float32), (rows[accept], cand[accept])),
                             shape=(n, n))
    expanded = ((accepted @ r_half) + r_full).tocsr()
    expanded.data[:] = 1.0
    return initial_rank, expanded


def _softmax_weights(features: np.ndarray, expanded: sp.csr_matrix, chunk: int = 1 << 16) -> sp.csr_matrix:
    """V: per row, softmax of minus the squared L2 distance over the row's expanded set."""
    n = features.shape[0]
    rows = np.repeat(np.arange(n), np.diff(expanded.indptr))
    cols = expanded.indices
    sq = np.einsum("ij,ij->i", features, features)
    dist = np.empty(len(rows), dtype=np.float32)
    for s in range(0, len(rows), chunk):
        r, c = rows[s:s + chunk], cols[s:s + chunk]
        dist[s:s + chunk] = sq[r] + sq[c] - 2.0 * np.einsum("ij,ij->i", features[r], features[c])
    neg = -dist.astype(np.float64)
    row_max = np.full(n, -np.inf)
    np.maximum.at(row_max, rows, neg)
    w = np.exp(neg - row_max[rows])
    w /= np.bincount(rows, weights=w, minlength=n)[rows]
    return sp.csr_matrix((w.astype(np.float32), cols, expanded.indptr), shape=(n, n))


def jaccard_distance(features: np.ndarray, num_query: int, k1: int = 20, k2: int = 6) -> np.ndarray:
    """Query x gallery k-reciprocal Jaccard distance [num_query, N - num_query] (float32).

    ``features`` = queries followed by gallery, float32 [N, d] (normalise them first for the cosine metric).
    """
    features = np.ascontiguousarray(features, dtype=np.float32)
    n = features.shape[0]
    if not 0 < num_query < n:
        raise ValueError(f"num_query={num_query} must leave a non-empty query and gallery set (N = {n})")
    initial_rank, expanded = k_reciprocal_neighbours(features, k1)
    v = _softmax_weights(features, expanded)
    if k2 != 1:
        width = min(int(k2), initial_rank.shape[1])
        qe = sp.csr_matrix((np.full(n * width, 1.0 / width, dtype=np.float32),
                            initial_rank[:, :width].reshape(-1), np.arange(0, n * width + 1, width)),
                           shape=(n, n))
        v = (qe @ v).tocsr()
    v.eliminate_zeros()
    v_csc = v.tocsc()
    out = np.empty((num_query, n - num_query), dtype=np.float32)
    for i in range(num_query):
        cols = v.indices[v.indptr[i]:v.indptr[i + 1]]
        vals = v.data[v.indptr[i]:v.indptr[i + 1]]
        starts, ends = v_csc.indptr[cols], v_csc.indptr[cols + 1]
        lengths = ends - starts
        gather = np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths) + np.arange(lengths.sum())
        mins = np.minimum(np.repeat(vals, lengths), v_csc.data[gather])
        shared = np.bincount(v_csc.indices[gather], weights=mins, minlength=n)[num_query:]
        out[i] = 1.0 - shared / (2.0 - shared)
    np.maximum(out, 0.0, out=out)
    return out
