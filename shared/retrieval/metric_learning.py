"""Deep-metric-learning metrics: Recall@K, NMI, pair-counting F1, MAP@R, R-precision and the Roth/DAS
``mAP_c`` variant, for a test set that is both query and gallery, plus the In-Shop query->gallery protocol.

Definitions (all results in percent):

* **Recall@K**: exact k-NN (faiss ``IndexFlatL2`` by default) of every point in the whole set, the point
  itself excluded (pytorch-metric-learning's rule: its own index is dropped, or the (K+1)-th neighbour if the
  own index is not returned); a hit when any of the first K neighbours has the query's label. Recall@1 equals
  PML's ``precision_at_1``.
* **NMI**: faiss k-means (``niter`` iterations, fixed ``seed``) with ``n_clusters`` clusters (default: the
  number of distinct labels, as PML does; the DAS/Roth code uses the *training* class count, pass it
  explicitly), every point assigned to its nearest centroid, then
  ``sklearn.metrics.normalized_mutual_info_score``.
* **F1**: pair counting over all unordered pairs, on the same k-means clusters: TP = same cluster & same
  class, FP = same cluster & different class, FN = different cluster & same class; F1 = 2PR / (P + R).
* **MAP@R** (Musgrave et al., PML ``mean_average_precision_at_r``): R = class size - 1; (1/R) sum over the
  first R neighbours of precision@i at the relevant positions. **R-precision**: fraction relevant among the
  first R.
* **mAP_c** (Revisiting-DML / DAS code): the same average, but with R = class size *including* the query, over
  the first R neighbours after self-exclusion and divided by that R; it is therefore at most (R-1)/R and
  differs from MAP@R on purpose.

Lone queries (a class with a single sample, so nothing relevant exists): PML leaves them out of precision_at_1
and MAP@R. Here they are left out of MAP@R / R-precision / mAP_c (undefined there) and, by default, counted as
misses in Recall@K (Roth/DAS behaviour); ``exclude_lone_queries=True`` drops them from Recall@K too (PML
behaviour).
"""
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence

import faiss
import numpy as np
from sklearn.metrics import normalized_mutual_info_score

from shared.retrieval._checks import as_1d, as_float32_matrix, check_same_dim
from shared.retrieval.knn import knn_search

__all__ = [
    "MetricLearningResult",
    "evaluate_embeddings",
    "evaluate_query_gallery",
    "recall_at_k",
    "map_at_r",
    "map_c",
    "kmeans_cluster",
    "nmi_score",
    "pair_f1_score",
    "CUB_CARS_RECALL_KS",
    "SOP_RECALL_KS",
    "INSHOP_RECALL_KS",
]

CUB_CARS_RECALL_KS = (1, 2, 4, 8)
SOP_RECALL_KS = (1, 10, 100, 1000)
INSHOP_RECALL_KS = (1, 10, 20, 30, 40, 50)


@dataclass
class MetricLearningResult:
    """Metric-learning results, every value in percent; ``None`` for metrics that were not requested.

    Attributes:
        recall_at_k: {K: Recall@K}.
        nmi: normalised mutual information of the k-means clustering.
        f1: pair-counting F1 of the same clustering.
        map_at_r: Musgrave's MAP@R (R = class size - 1).
        r_precision: R-precision with the same R.
        map_c: Roth/DAS ``mAP_c`` (R = class size including the query).
        num_queries: queries evaluated; n_clusters: k-means cluster count used.
    """

    recall_at_k: Dict[int, float]
    nmi: Optional[float] = None
    f1: Optional[float] = None
    map_at_r: Optional[float] = None
    r_precision: Optional[float] = None
    map_c: Optional[float] = None
    num_queries: int = 0
    n_clusters: Optional[int] = None
    extras: Dict[str, Any] = field(default_factory=dict, repr=False)

    def as_dict(self) -> Dict[str, float]:
        """Flat dict of the requested metrics: ``{"R@1": .., "NMI": .., "F1": .., "MAP@R": .., "RP": ..,
        "mAP_c": ..}``."""
        out = {f"R@{k}": v for k, v in self.recall_at_k.items()}
        for key, value in (("NMI", self.nmi), ("F1", self.f1), ("MAP@R", self.map_at_r),
                           ("RP", self.r_precision), ("mAP_c", self.map_c)):
            if value is not None:
                out[key] = value
        return out


def _check_ks(recall_ks: Sequence[int]) -> tuple:
    ks = tuple(int(k) for k in recall_ks)
    if any(k < 1 for k in ks):
        raise ValueError(f"recall_ks must be positive integers, got {recall_ks}")
    return ks


def _label_codes(*label_arrays: np.ndarray):
    """Map arbitrary labels (ints, strings) to dense int codes shared by all arrays."""
    allv = np.concatenate(label_arrays)
    _, codes = np.unique(allv, return_inverse=True)
    out, start = [], 0
    for arr in label_arrays:
        out.append(codes[start:start + len(arr)].astype(np.int64))
        start += len(arr)
    return out


def recall_at_k(knn_labels: np.ndarray, query_labels: np.ndarray, ks: Sequence[int],
                valid: Optional[np.ndarray] = None) -> Dict[int, float]:
    """Recall@K in percent: fraction of queries with a same-label item among their first K neighbours.

    ``knn_labels`` is [nq, k_max] (labels of the neighbours, best first); K larger than k_max raises.
    """
    if max(ks) > knn_labels.shape[1]:
        raise ValueError(f"Recall@{max(ks)} needs {max(ks)} neighbours, only {knn_labels.shape[1]} available")
    match = knn_labels == query_labels[:, None]
    first = np.where(match.any(axis=1), match.argmax(axis=1), np.iinfo(np.int64).max)
    if valid is not None:
        first = first[valid]
    if len(first) == 0:
        raise ValueError("no query left to evaluate Recall@K on")
    return {k: float(np.mean(first < k)) * 100.0 for k in ks}


def _average_precision_at(match: np.ndarray, r: np.ndarray, denom: np.ndarray) -> np.ndarray:
    """Per query: sum_{i<=r} precision@i * rel_i, divided by ``denom`` (rows with r = 0 give 0)."""
    cols = np.arange(1, match.shape[1] + 1)
    within = cols[None, :] <= r[:, None]
    rel = match & within
    precision = np.cumsum(rel, axis=1) / cols[None, :]
    return (precision * rel).sum(axis=1) / np.maximum(denom, 1)


def map_at_r(knn_labels: np.ndarray, query_labels: np.ndarray, relevant_counts: np.ndarray) -> tuple:
    """Musgrave's MAP@R and R-precision (percent), R = ``relevant_counts`` per query (R = 0: skipped)."""
    r = np.asarray(relevant_counts, dtype=np.int64)
    keep = r > 0
    if not keep.any():
        raise ValueError("MAP@R undefined: no query has any relevant item (every class has a single sample?)")
    if r.max() > knn_labels.shape[1]:
        raise ValueError(f"MAP@R needs {r.max()} neighbours per query, only {knn_labels.shape[1]} available")
    width = int(r.max())
    match = knn_labels[keep, :width] == query_labels[keep, None]
    rk = r[keep]
    ap = _average_precision_at(match, rk, rk)
    cols = np.arange(1, width + 1)
    rp = (match & (cols[None, :] <= rk[:, None])).sum(axis=1) / rk
    return float(ap.mean()) * 100.0, float(rp.mean()) * 100.0


def map_c(knn_labels: np.ndarray, query_labels: np.ndarray, class_sizes: np.ndarray) -> float:
    """Roth/DAS ``mAP_c`` (percent): R = class size including the query, over the first R self-excluded
    neighbours, divided by R. Lone queries (class size 1) are skipped."""
    r = np.asarray(class_sizes, dtype=np.int64)
    keep = r > 1
    if not keep.any():
        raise ValueError("mAP_c undefined: every class has a single sample")
    width = min(int(r.max()), knn_labels.shape[1])
    match = knn_labels[keep, :width] == query_labels[keep, None]
    rk = r[keep]
    return float(_average_precision_at(match, np.minimum(rk, width), rk).mean()) * 100.0


def kmeans_cluster(embeddings: np.ndarray, n_clusters: int, niter: int = 20, seed: int = 1234) -> np.ndarray:
    """faiss k-means (``faiss.Kmeans(d, n_clusters, niter, seed)``), then each point's nearest centroid.

    ``min_points_per_centroid=1``: faiss reads it only to print "WARNING clustering N points to K centroids"
    (with fewer than 39 points per centroid, usual for NMI where K = the class count), so the clusters are
    those of faiss' default (and of PML's ``FaissKMeans``) without one console line per evaluation."""
    x = as_float32_matrix(embeddings, "embeddings")
    n_clusters = int(n_clusters)
    if not 1 <= n_clusters <= x.shape[0]:
        raise ValueError(f"n_clusters={n_clusters} must be in [1, number of points = {x.shape[0]}]")
    kmeans = faiss.Kmeans(x.shape[1], n_clusters, niter=int(niter), seed=int(seed), min_points_per_centroid=1)
    kmeans.train(x)
    _, assign = kmeans.index.search(x, 1)
    return assign[:, 0].astype(np.int64)


def nmi_score(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Normalised mutual information (sklearn, arithmetic normalisation) in percent."""
    return float(normalized_mutual_info_score(labels, clusters)) * 100.0


def pair_f1_score(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Pair-counting F1 in percent over all unordered pairs (see module docstring), from the contingency
    table: TP = sum_ij C(n_ij, 2), TP + FP = sum_i C(a_i, 2) (cluster sizes), TP + FN = sum_j C(b_j, 2) (class
    sizes)."""
    labels = np.asarray(labels)
    clusters = np.asarray(clusters)
    _, lab = np.unique(labels, return_inverse=True)
    _, clu = np.unique(clusters, return_inverse=True)
    pair_ids = clu.astype(np.int64) * (lab.max() + 1) + lab
    n_ij = np.bincount(pair_ids).astype(np.float64)

    def pairs(n: np.ndarray) -> float:
        return float((n * (n - 1) / 2.0).sum())

    tp = pairs(n_ij)
    predicted = pairs(np.bincount(clu).astype(np.float64))
    actual = pairs(np.bincount(lab).astype(np.float64))
    if predicted == 0 or actual == 0 or tp == 0:
        return 0.0
    precision, recall = tp / predicted, tp / actual
    return 2.0 * precision * recall / (precision + recall) * 100.0


def evaluate_embeddings(
    embeddings: Any,
    labels: Sequence,
    recall_ks: Sequence[int] = CUB_CARS_RECALL_KS,
    compute_nmi: bool = True,
    compute_f1: bool = True,
    compute_map_at_r: bool = True,
    compute_map_c: bool = False,
    n_clusters: Optional[int] = None,
    kmeans_niter: int = 20,
    seed: int = 1234,
    metric: str = "l2",
    exclude_lone_queries: bool = False,
) -> MetricLearningResult:
    """All metric-learning metrics of a test set that is both query and gallery (CUB200, CARS196, SOP
    protocol).

    Args:
        embeddings: [n, d] float array (numpy or torch); NaN raises.
        labels: n class labels (any hashable numpy dtype).
        recall_ks: K values, e.g. (1, 2, 4, 8) for CUB/CARS or (1, 10, 100, 1000) for SOP.
        compute_nmi / compute_f1: run faiss k-means (shared by both) and compute NMI / pair F1.
        compute_map_at_r: Musgrave's MAP@R and R-precision. compute_map_c: the Roth/DAS variant.
        n_clusters: k-means clusters; default = number of distinct labels.
        kmeans_niter, seed: faiss k-means iterations and seed (1234 = faiss' default, as PML uses).
        metric: k-NN metric, "l2" (exact IndexFlatL2, the reference) or "cosine" / "ip".
        exclude_lone_queries: leave queries without any same-label item out of Recall@K (PML) instead of
            counting them as misses (Roth/DAS).
    """
    x = as_float32_matrix(embeddings, "embeddings")
    y_raw = as_1d(labels, "labels", x.shape[0])
    (y,) = _label_codes(y_raw)
    ks = _check_ks(recall_ks)
    n = x.shape[0]
    class_sizes = np.bincount(y)[y]
    k_needed = max(ks)
    if compute_map_at_r:
        k_needed = max(k_needed, int(class_sizes.max()) - 1)
    if compute_map_c:
        k_needed = max(k_needed, int(class_sizes.max()))
    if max(ks) > n - 1:
        raise ValueError(f"Recall@{max(ks)} needs {max(ks)} neighbours but only {n - 1} other points exist")
    k_needed = min(k_needed, n - 1)
    _, nn_idx = knn_search(x, x, k_needed, metric=metric, exclude_self=True)
    knn_labels = y[nn_idx]
    not_lone = class_sizes > 1
    result = MetricLearningResult(
        recall_at_k=recall_at_k(knn_labels, y, ks, valid=not_lone if exclude_lone_queries else None),
        num_queries=int(not_lone.sum()) if exclude_lone_queries else n,
    )
    if compute_map_at_r:
        result.map_at_r, result.r_precision = map_at_r(knn_labels, y, class_sizes - 1)
    if compute_map_c:
        result.map_c = map_c(knn_labels, y, class_sizes)
    if compute_nmi or compute_f1:
        n_clusters = int(n_clusters) if n_clusters is not None else int(y.max()) + 1
        clusters = kmeans_cluster(x, n_clusters, niter=kmeans_niter, seed=seed)
        result.n_clusters = n_clusters
        if compute_nmi:
            result.nmi = nmi_score(y, clusters)
        if compute_f1:
            result.f1 = pair_f1_score(y, clusters)
    return result


def evaluate_query_gallery(
    query_embeddings: Any,
    query_labels: Sequence,
    gallery_embeddings: Any,
    gallery_labels: Sequence,
    recall_ks: Sequence[int] = INSHOP_RECALL_KS,
    compute_map_at_r: bool = True,
    metric: str = "l2",
) -> MetricLearningResult:
    """In-Shop protocol: separate query and gallery sets, no self-exclusion.

    Recall@K over all queries (a query whose label is absent from the gallery counts as a miss); MAP@R /
    R-precision with R = number of gallery items sharing the query's label (queries with R = 0 skipped), which
    is PML's ``get_accuracy(query, labels, reference, reference_labels, ref_includes_query=False)``
    definition.
    """
    q = as_float32_matrix(query_embeddings, "query_embeddings")
    g = as_float32_matrix(gallery_embeddings, "gallery_embeddings")
    check_same_dim(q, g, "query_embeddings", "gallery_embeddings")
    yq_raw = as_1d(query_labels, "query_labels", q.shape[0])
    yg_raw = as_1d(gallery_labels, "gallery_labels", g.shape[0])
    yq, yg = _label_codes(yq_raw, yg_raw)
    ks = _check_ks(recall_ks)
    if max(ks) > g.shape[0]:
        raise ValueError(
            f"Recall@{max(ks)} needs {max(ks)} neighbours but the gallery has {g.shape[0]} items"
        )
    counts = np.bincount(yg, minlength=int(max(yq.max(), yg.max())) + 1)[yq]
    k_needed = max(ks)
    if compute_map_at_r:
        k_needed = max(k_needed, int(counts.max()))
    _, nn_idx = knn_search(q, g, min(k_needed, g.shape[0]), metric=metric)
    knn_labels = yg[nn_idx]
    result = MetricLearningResult(recall_at_k=recall_at_k(knn_labels, yq, ks), num_queries=q.shape[0])
    if compute_map_at_r:
        result.map_at_r, result.r_precision = map_at_r(knn_labels, yq, counts)
    return result
