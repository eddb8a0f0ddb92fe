"""Exact (and optionally approximate) k-nearest-neighbour search on faiss, chunked over the queries.

Conventions
-----------
* ``metric="cosine"``: both sides are L2-normalised, the index is inner product; returned scores are cosine
  *similarities*, sorted descending.
* ``metric="ip"``: raw inner products (no normalisation), sorted descending.
* ``metric="l2"``: *squared* Euclidean distances (faiss' convention), sorted ascending.

The same code uses faiss GPU indexes when a GPU build of faiss is installed and ``use_gpu`` allows it; with
``faiss-cpu`` everything runs on the CPU. Memory: the database lives once in the index; faiss itself blocks
the
distance computation, and the queries are searched ``chunk_size`` rows at a time, so a 60k x 60k self-search
or
50k queries x 1M references (256-d) fits in a few GB.

Approximate search goes through faiss' index factory, e.g. ``index_key="IVF1024,Flat"`` (with ``nprobe``) or
``"PCAW256,L2norm,Flat"`` (PCA-whitening + re-normalisation, trained on ``train_vectors``).
"""

import logging
from typing import Any, Optional, Tuple

import faiss
import numpy as np

from shared.retrieval._checks import as_float32_matrix, check_same_dim

logger = logging.getLogger(__name__)

__all__ = ["knn_search", "build_index", "l2_normalize", "METRICS"]

#: metric name -> (faiss metric type, normalise inputs, larger score is better)
METRICS = {
    "cosine": (faiss.METRIC_INNER_PRODUCT, True, True),
    "ip": (faiss.METRIC_INNER_PRODUCT, False, True),
    "l2": (faiss.METRIC_L2, False, False),
}


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Return a float32 copy of ``x`` with unit-L2-norm rows, x / max(||x||, 1e-12) (zero rows stay zero)."""
    x = np.array(x, dtype=np.float32, copy=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x /= np.maximum(norms, 1e-12)
    return x


def _metric_spec(metric: str):
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(METRICS)}")
    return METRICS[metric]


def _maybe_to_gpu(index: Any, use_gpu: Any) -> Any:
    if use_gpu is False or not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() == 0:
        if use_gpu is True:
            raise RuntimeError("use_gpu=True but this faiss build sees no GPU (faiss-cpu is installed)")
        return index
    return faiss.index_cpu_to_all_gpus(index)


def build_index(
    dim: int,
    metric: str = "cosine",
    index_key: str = "Flat",
    train_vectors: Optional[np.ndarray] = None,
    nprobe: Optional[int] = None,
) -> Any:
    """Build (and train, if needed) a faiss CPU index through ``faiss.index_factory``.

    Args:
        dim: descriptor dimension.
        metric: "cosine" | "ip" | "l2" (cosine uses an inner-product index; callers normalise the vectors).
        index_key: faiss factory string, "Flat" (exact) by default; e.g. "IVF1024,Flat",
        "PCAW512,L2norm,Flat".
        train_vectors: vectors used to train the index when it needs training (IVF, PCA...). Required then.
        nprobe: IVF cells visited per query (faiss default 1 when None).
    """
    faiss_metric, normalize, _ = _metric_spec(metric)
    index = faiss.index_factory(int(dim), index_key, faiss_metric)
    if not index.is_trained:
        if train_vectors is None:
            raise ValueError(f"index {index_key!r} must be trained: pass train_vectors")
        train = as_float32_matrix(train_vectors, "train_vectors")
        if train.shape[1] != dim:
            raise ValueError(f"train_vectors have dimension {train.shape[1]}, index dimension is {dim}")
        if normalize:
            train = l2_normalize(train)
        index.train(train)
    if nprobe is not None:
        faiss.ParameterSpace().set_index_parameter(index, "nprobe", int(nprobe))
    return index


def knn_search(
    queries: Any,
    database: Any,
    k: int,
    metric: str = "cosine",
    exclude_self: bool = False,
    index_key: str = "Flat",
    train_vectors: Optional[Any] = None,
    nprobe: Optional[int] = None,
    chunk_size: int = 16384,
    use_gpu: Any = "auto",
) -> Tuple[np.ndarray, np.ndarray]:
    """k-NN of every query in ``database``.

    Args:
        queries: [nq, d] array (numpy or torch); NaN/inf raise ``ValueError``.
        database: [nd, d] array; pass the same object as ``queries`` (or an equal array) with
        ``exclude_self=True``
            for a leave-one-out self-search.
        k: neighbours per query; ``k > nd`` (``k > nd - 1`` with ``exclude_self``) raises ``ValueError``.
        metric: "cosine" (similarity, descending), "ip" (inner product, descending) or "l2" (squared Euclidean
            distance, ascending).
        exclude_self: search k+1 neighbours and drop the query's own index (query i is database row i). When
        the
            own index is not among the k+1 (exact duplicates elsewhere), the last neighbour is dropped
            instead —
            the same rule as pytorch-metric-learning's ``FaissKNN``.
        index_key / train_vectors / nprobe: see :func:`build_index`.
        chunk_size: queries searched per faiss call.
        use_gpu: "auto" (GPU when faiss sees one), True (require) or False.

    Returns:
        ``(scores, indices)``: float32 [nq, k] and int64 [nq, k].
    """
    q = as_float32_matrix(queries, "queries")
    db = q if (exclude_self and database is queries) else as_float32_matrix(database, "database")
    check_same_dim(q, db, "queries", "database")
    if exclude_self and q.shape[0] != db.shape[0]:
        raise ValueError(
            f"exclude_self=True needs the database to be the query set itself (row i = query i), got "
            f"{q.shape[0]} queries and {db.shape[0]} database rows"
        )
    k = int(k)
    available = db.shape[0] - int(exclude_self)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > available:
        raise ValueError(
            f"k={k} is larger than the searchable database ({available} vectors"
            f"{' after excluding the query itself' if exclude_self else ''})"
        )
    _, normalize, _ = _metric_spec(metric)
    if normalize:
        same = db is q
        q = l2_normalize(q)
        db = q if same else l2_normalize(db)
    index = build_index(q.shape[1], metric, index_key, train_vectors, nprobe)
    index = _maybe_to_gpu(index, use_gpu)
    index.add(db)

    k_search = k + int(exclude_self)
    nq = q.shape[0]
    scores = np.empty((nq, k), dtype=np.float32)
    indices = np.empty((nq, k), dtype=np.int64)
    for start in range(0, nq, chunk_size):
        stop = min(nq, start + chunk_size)
        d_chunk, i_chunk = index.search(q[start:stop], k_search)
        if exclude_self:
            d_chunk, i_chunk = _drop_self(d_chunk, i_chunk, np.arange(start, stop))
        scores[start:stop] = d_chunk
        indices[start:stop] = i_chunk
    return scores, indices


def _drop_self(dist: np.ndarray, idx: np.ndarray, self_ids: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Remove one column per row: the row's own id where present, otherwise the last column."""
    is_self = idx == self_ids[:, None]
    has_self = is_self.any(axis=1)
    # first occurrence of self per row (or the last column when absent)
    drop = np.where(has_self, is_self.argmax(axis=1), idx.shape[1] - 1)
    keep = np.ones(idx.shape, dtype=bool)
    keep[np.arange(idx.shape[0]), drop] = False
    n, kk = idx.shape
    return dist[keep].reshape(n, kk - 1), idx[keep].reshape(n, kk - 1)
