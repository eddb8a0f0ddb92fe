"""Image copy detection metrics, DISC21 protocol (a re-implementation of isc2021 ``isc/metrics.py``, which
is not on PyPI).

Metrics (percent):

* **µAP**: all (query, reference, score) predictions pooled; a duplicate (query, reference) pair raises
  ``ValueError``. Sorted by score, descending, ties with *negatives first* (worst case). With TP_i the true
  positives among the first i predictions and |GT| the number of ground-truth pairs that have a reference
  (queries without a match do not count): precision_i = TP_i / i, recall_i = TP_i / |GT|,
  µAP = sum_i (recall_i - recall_{i-1}) * precision_i.
* **recall@P90**: the largest recall_i with precision_i >= 0.9; ``None`` when precision 0.9 is never reached
  (SSCD logs 0.0 then).
* **accuracy@1**: fraction of the |GT| ground-truth pairs whose reference is that query's top-scoring
  prediction (a tie for the top score with another reference counts as a miss, the same worst case).
* **µAPsn**: µAP after score normalisation s'(q, r) = q.r - beta * mean(top-k_sn inner products of q with a
  background/training set), beta = 1, k_sn = 3. It shifts each query's scores by a constant, so it changes
  only the global order across queries.

Scores here are inner products of L2-normalised descriptors (equivalent in order to SSCD's -L2 distance:
-||q - r||^2 = 2 q.r - 2). Optional codec via faiss' index factory, e.g. ``"PCAW512,L2norm,Flat"`` trained on
the training descriptors. Ids of the ground truth and of the predictions are checked against the evaluated
query / reference ids when those are known (:func:`check_known_ids`).
"""

import bisect
import difflib
import os
from dataclasses import dataclass
from typing import Any, Dict, Hashable, Iterable, Mapping, Optional, Sequence, Tuple, Union

import faiss
import numpy as np

from shared.retrieval._checks import as_1d, as_float32_matrix, check_same_dim, check_unit_norm
from shared.retrieval.knn import knn_search

__all__ = [
    "CopyDetectionResult",
    "Predictions",
    "micro_average_precision",
    "evaluate_copy_detection",
    "score_normalize",
    "apply_codec",
    "precision_recall_curve",
    "check_known_ids",
    "global_top_pairs",
    "trapezoid_average_precision",
    "copydays_metrics",
]


@dataclass
class CopyDetectionResult:
    """Copy-detection metrics in percent.

    Attributes:
        uAP: micro average precision of the raw scores.
        recall_at_p90: largest recall at precision >= 90 % (``None`` when 90 % precision is never reached).
        accuracy_at_1: fraction of ground-truth pairs ranked first for their query.
        uAP_sn, recall_at_p90_sn, accuracy_at_1_sn: the same after score normalisation (``None`` if not run).
        num_predictions: pooled predictions; num_gt: ground-truth pairs with a reference (|GT|).
    """

    uAP: float
    recall_at_p90: Optional[float]
    accuracy_at_1: float
    uAP_sn: Optional[float] = None
    recall_at_p90_sn: Optional[float] = None
    accuracy_at_1_sn: Optional[float] = None
    num_predictions: int = 0
    num_gt: int = 0

    def as_dict(self) -> Dict[str, float]:
        """Flat dict of the computed metrics (``None`` values left out)."""
        keys = ("uAP", "recall_at_p90", "accuracy_at_1", "uAP_sn", "recall_at_p90_sn", "accuracy_at_1_sn")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


@dataclass
class Predictions:
    """Pooled predictions as parallel arrays: query id, reference id, score (higher = more likely a copy)."""

    query: np.ndarray
    reference: np.ndarray
    score: np.ndarray

    def __post_init__(self):
        self.query = as_1d(self.query, "predictions.query")
        self.reference = as_1d(self.reference, "predictions.reference", len(self.query))
        self.score = as_1d(self.score, "predictions.score", len(self.query), dtype=np.float64)
        if not np.isfinite(self.score).all():
            raise ValueError("prediction scores contain NaN or inf")

    @classmethod
    def coerce(cls, predictions: Any) -> "Predictions":
        """Accept a ``Predictions``, a mapping with keys query/reference/score, or an iterable of triples."""
        if isinstance(predictions, Predictions):
            return predictions
        if isinstance(predictions, Mapping):
            return cls(predictions["query"], predictions["reference"], predictions["score"])
        triples = list(predictions)
        if not triples:
            return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0))
        if any(len(t) != 3 for t in triples):
            raise ValueError("predictions must be (query_id, reference_id, score) triples")
        q, r, s = zip(*triples)
        return cls(np.asarray(q), np.asarray(r), np.asarray(s, dtype=np.float64))


GroundTruth = Union[Mapping[Hashable, Optional[Hashable]], Iterable[Tuple[Hashable, Optional[Hashable]]]]


def _gt_pairs(gt: GroundTruth) -> Tuple[np.ndarray, np.ndarray]:
    """Ground-truth (query, reference) pairs that have a reference (reference None/""/NaN: dropped)."""
    items = gt.items() if isinstance(gt, Mapping) else gt
    queries, refs = [], []
    for pair in items:
        q, r = pair
        if r is None or (isinstance(r, str) and r == "") or (isinstance(r, float) and np.isnan(r)):
            continue
        queries.append(q)
        refs.append(r)
    return np.asarray(queries), np.asarray(refs)


def _vocab(*arrays: np.ndarray) -> np.ndarray:
    parts = [a for a in arrays if len(a)]
    if not parts:
        return np.zeros(0, dtype=np.int64)
    try:
        return np.unique(np.concatenate(parts))
    except TypeError as exc:  # mixed id types, e.g. ints and strings
        raise ValueError(
            f"query/reference ids of predictions and ground truth must have one type: {exc}"
        ) from exc


def _closest_known(unknown: str, known_sorted: Sequence[str]) -> Optional[str]:
    """The known id most similar to ``unknown``: its name without an extension if that is known; else the
    known
    id of the same length with the fewest differing characters (vectorised, fine for a million ids); else the
    best ``difflib`` match among its neighbours in sorted order."""
    stem = os.path.splitext(unknown)[0].strip()
    at = bisect.bisect_left(known_sorted, stem)
    if at < len(known_sorted) and known_sorted[at] == stem:
        return stem
    same_length = np.array([k for k in known_sorted if len(k) == len(unknown)])
    if len(same_length) and len(unknown):
        codes = same_length.view(np.uint32).reshape(len(same_length), -1)
        target = np.array([unknown]).view(np.uint32)
        return str(same_length[int(np.argmin((codes != target).sum(axis=1)))])
    candidates = []
    for probe in (unknown, stem):
        at = bisect.bisect_left(known_sorted, probe)
        candidates += list(known_sorted[max(0, at - 2) : at + 2])
    best = difflib.get_close_matches(unknown, candidates, n=1, cutoff=0.0)
    return best[0] if best else None


def check_known_ids(ids: Any, known: Any, what: str, source: str, show: int = 5) -> None:
    """Raise ``ValueError`` when an id in ``ids`` is not in ``known``: the message gives how many, the first
    ``show`` of them and the closest known id (e.g. ``'Q00000.jpg'`` -> ``'Q00000'``), instead of the unknown
    ids
    silently counting as misses (µAP 0 with exit status 0)."""
    ids = np.asarray(ids)
    known = np.asarray(known)
    if len(ids) == 0:
        return
    try:
        unknown = np.setdiff1d(np.unique(ids), known)
    except TypeError as exc:
        raise ValueError(f"{what} and {source} must have one type: {exc}") from exc
    if len(unknown) == 0:
        return
    known_sorted = sorted(str(k) for k in known.tolist())
    first = [u.item() if hasattr(u, "item") else u for u in unknown[:show]]
    closest = _closest_known(str(first[0]), known_sorted) if known_sorted else None
    raise ValueError(
        f"{len(unknown)} of the {len(np.unique(ids))} {what} are not among {source} ({len(known)} ids), "
        f"e.g. {first}; the closest known id to {str(first[0])!r} is {closest!r} "
        "(ids are file names without extension)"
    )


@dataclass
class _Encoded:
    """Predictions and ground truth with query / reference ids replaced by dense integer codes."""

    pred_q: np.ndarray
    pred_r: np.ndarray
    score: np.ndarray
    gt_q: np.ndarray
    gt_r: np.ndarray
    n_queries: int
    n_refs: int

    def pred_keys(self) -> np.ndarray:
        return self.pred_q * self.n_refs + self.pred_r

    def gt_keys(self) -> np.ndarray:
        return self.gt_q * self.n_refs + self.gt_r


def _encode(predictions: Any, gt: GroundTruth) -> _Encoded:
    preds = Predictions.coerce(predictions)
    gq, gr = _gt_pairs(gt)
    q_vocab = _vocab(preds.query, gq)
    r_vocab = _vocab(preds.reference, gr)
    enc = _Encoded(
        np.searchsorted(q_vocab, preds.query).astype(np.int64),
        np.searchsorted(r_vocab, preds.reference).astype(np.int64),
        preds.score,
        np.searchsorted(q_vocab, gq).astype(np.int64),
        np.searchsorted(r_vocab, gr).astype(np.int64),
        len(q_vocab),
        len(r_vocab),
    )
    gt_keys = enc.gt_keys()
    if len(np.unique(gt_keys)) != len(gt_keys):
        raise ValueError("ground truth lists the same (query, reference) pair twice")
    if len(gt_keys) == 0:
        raise ValueError("ground truth has no (query, reference) pair with a reference: µAP is undefined")
    uniq, counts = np.unique(enc.pred_keys(), return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][0]
        raise ValueError(
            f"duplicate prediction for (query, reference) = ({q_vocab[dup // len(r_vocab)]!r}, "
            f"{r_vocab[dup % len(r_vocab)]!r}); each pair may be predicted once"
        )
    return enc


def _pr_curve(enc: _Encoded) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    positive = np.isin(enc.pred_keys(), enc.gt_keys())
    order = np.lexsort((positive, -enc.score))  # score descending, then negatives (False) first
    positive = positive[order]
    tp = np.cumsum(positive)
    return tp / np.arange(1, len(positive) + 1), tp / len(enc.gt_q), positive


def precision_recall_curve(predictions: Any, gt: GroundTruth) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Operating points of the pooled predictions: ``(precision, recall, is_positive)`` in the evaluation
    order
    (score descending, negatives first among equal scores). Raises on duplicate (query, reference) pairs."""
    return _pr_curve(_encode(predictions, gt))


def _accuracy_at_1(enc: _Encoded) -> float:
    """Percent of GT pairs whose reference is the strict top-scoring prediction of its query."""
    if len(enc.pred_q) == 0:
        return 0.0
    order = np.lexsort((-enc.score, enc.pred_q))  # grouped by query, best score first
    q_sorted, s_sorted = enc.pred_q[order], enc.score[order]
    starts = np.r_[0, np.nonzero(q_sorted[1:] != q_sorted[:-1])[0] + 1]
    nxt = np.minimum(starts + 1, len(order) - 1)
    tied = (nxt != starts) & (q_sorted[nxt] == q_sorted[starts]) & (s_sorted[nxt] == s_sorted[starts])
    top_ref = np.full(enc.n_queries, -1, dtype=np.int64)
    top_ref[q_sorted[starts]] = np.where(tied, -1, enc.pred_r[order[starts]])
    return float(np.mean(top_ref[enc.gt_q] == enc.gt_r)) * 100.0


def _metrics(enc: _Encoded) -> CopyDetectionResult:
    precision, recall, positive = _pr_curve(enc)
    n_gt = len(enc.gt_q)
    uap = float(np.sum(precision[positive]) / n_gt) * 100.0  # recall steps by 1/|GT| exactly at the positives
    reach = precision >= 0.9
    r_at_p90 = float(recall[reach].max()) * 100.0 if reach.any() else None
    return CopyDetectionResult(
        uAP=uap,
        recall_at_p90=r_at_p90,
        accuracy_at_1=_accuracy_at_1(enc),
        num_predictions=len(enc.score),
        num_gt=n_gt,
    )


def micro_average_precision(
    predictions: Any,
    gt: GroundTruth,
    query_ids: Optional[Sequence] = None,
    reference_ids: Optional[Sequence] = None,
) -> CopyDetectionResult:
    """µAP, recall@P90 and accuracy@1 of pooled predictions (see the module docstring for the definitions).

    Args:
        predictions: :class:`Predictions`, a mapping {"query", "reference", "score"} of arrays, or an
        iterable of
            (query_id, reference_id, score) triples. Duplicate (query, reference) pairs raise ``ValueError``.
        gt: {query_id: reference_id or None} or an iterable of (query_id, reference_id-or-None) pairs; queries
            without a reference are dropped (they do not count in |GT|).
        query_ids, reference_ids: the ids of the evaluated query / reference images, when known: every id of
            the predictions and of the ground truth must then be one of them (``ValueError`` naming the first
            unknown ids and the closest known one otherwise).
    """
    if query_ids is not None or reference_ids is not None:
        preds = Predictions.coerce(predictions)
        gq, gr = _gt_pairs(gt)
        if query_ids is not None:
            check_known_ids(preds.query, query_ids, "prediction query ids", "the query ids")
            check_known_ids(gq, query_ids, "ground-truth query ids", "the query ids")
        if reference_ids is not None:
            check_known_ids(preds.reference, reference_ids, "prediction reference ids", "the reference ids")
            check_known_ids(gr, reference_ids, "ground-truth reference ids", "the reference ids")
        predictions = preds
    return _metrics(_encode(predictions, gt))


def score_normalize(
    query_descriptors: Any, background_descriptors: Any, k: int = 3, beta: float = 1.0
) -> np.ndarray:
    """Per-query score-normalisation offset beta * mean(top-k inner products with the background set).

    The normalised score is s'(q, r) = q.r - offset[q]; equivalently, append -offset to each query vector and
    1 to
    each reference vector and search by inner product. Descriptors must be L2-normalised.
    """
    q = as_float32_matrix(query_descriptors, "query_descriptors")
    bg = as_float32_matrix(background_descriptors, "background_descriptors")
    check_same_dim(q, bg, "query_descriptors", "background_descriptors")
    check_unit_norm(q, "query_descriptors")
    check_unit_norm(bg, "background_descriptors")
    sims, _ = knn_search(q, bg, k, metric="ip")
    return beta * sims.astype(np.float64).mean(axis=1)


def _fit_codec(codec: str, dim: int, train_descriptors: Any = None) -> Any:
    """The trained faiss index-factory object for ``codec`` (its pre-transform chain is what gets applied)."""
    index = faiss.index_factory(dim, codec, faiss.METRIC_INNER_PRODUCT)
    if isinstance(index, faiss.IndexPreTransform) and not index.is_trained:
        if train_descriptors is None:
            raise ValueError(
                f"codec {codec!r} must be trained: pass train_descriptors (the training-set descriptors)"
            )
        index.train(as_float32_matrix(train_descriptors, "train_descriptors"))
    return index


def _transform(index: Any, x: np.ndarray) -> np.ndarray:
    if not isinstance(index, faiss.IndexPreTransform):
        return x
    for i in range(index.chain.size()):
        x = faiss.downcast_VectorTransform(index.chain.at(i)).apply_py(x)
    return np.ascontiguousarray(x, dtype=np.float32)


def apply_codec(descriptors: Any, codec: str, train_descriptors: Any = None) -> np.ndarray:
    """Apply a faiss index-factory pre-transform chain, e.g. ``"PCAW512,L2norm,Flat"`` (PCA-whitening then
    re-normalisation), trained on ``train_descriptors``; ``"Flat"`` returns the descriptors unchanged."""
    x = as_float32_matrix(descriptors, "descriptors")
    return _transform(_fit_codec(codec, x.shape[1], train_descriptors), x)


def evaluate_copy_detection(
    query_descriptors: Any,
    reference_descriptors: Any,
    gt: GroundTruth,
    query_ids: Optional[Sequence] = None,
    reference_ids: Optional[Sequence] = None,
    k: int = 10,
    background_descriptors: Optional[Any] = None,
    beta: float = 1.0,
    sn_k: int = 3,
    codec: str = "Flat",
    codec_train: Optional[Any] = None,
    candidates: str = "per_query",
    return_predictions: bool = False,
) -> Union[CopyDetectionResult, Tuple[CopyDetectionResult, Predictions]]:
    """End to end: candidate pairs by exact inner product, pooled µAP / recall@P90 / accuracy@1, and with
    ``background_descriptors`` the score-normalised variants.

    Args:
        query_descriptors, reference_descriptors: [nq, d], [nr, d]; must be L2-normalised unless a codec
        ending in
            ``L2norm`` re-normalises them (``ValueError`` otherwise).
        gt: ground truth keyed by ``query_ids`` / ``reference_ids`` (default: row indices). A ground-truth id
        that
            is not among them raises ``ValueError`` showing the first unknown ids and the closest known one.
        k: candidates per query (DISC21: 10).
        background_descriptors: training-set descriptors for score normalisation (µAPsn); record their count,
        as a
            subset changes the numbers.
        beta, sn_k: score-normalisation weight and number of background neighbours.
        codec / codec_train: faiss factory string and its training descriptors (see :func:`apply_codec`); the
            background set goes through the same codec.
        candidates: "per_query" (the k nearest references of every query; SSCD's and RDCD's ``disc_eval``
            default) or "global" (exactly the k x num_queries highest-scoring pairs overall, SSCD's
            ``--global_candidates``; with score normalisation the selection is redone on the normalised
            scores).
        return_predictions: also return the pooled predictions (score-normalised ones when a background set
            is given), e.g. to write them to a CSV.
    """
    if candidates not in ("per_query", "global"):
        raise ValueError(f"candidates must be 'per_query' or 'global', got {candidates!r}")
    q = as_float32_matrix(query_descriptors, "query_descriptors")
    r = as_float32_matrix(reference_descriptors, "reference_descriptors")
    check_same_dim(q, r, "query_descriptors", "reference_descriptors")
    qids = np.arange(len(q)) if query_ids is None else as_1d(query_ids, "query_ids", len(q))
    rids = np.arange(len(r)) if reference_ids is None else as_1d(reference_ids, "reference_ids", len(r))
    if len(np.unique(qids)) != len(qids) or len(np.unique(rids)) != len(rids):
        raise ValueError("query_ids and reference_ids must be unique")
    gq, gr = _gt_pairs(gt)
    check_known_ids(gq, qids, "ground-truth query ids", "the query ids")
    check_known_ids(gr, rids, "ground-truth reference ids", "the reference ids")
    bg = (
        None
        if background_descriptors is None
        else as_float32_matrix(background_descriptors, "background_descriptors")
    )
    if codec != "Flat":
        fitted = _fit_codec(codec, q.shape[1], codec_train)  # trained once, applied to every set
        q, r = _transform(fitted, q), _transform(fitted, r)
        bg = None if bg is None else _transform(fitted, bg)
    check_unit_norm(q, "query_descriptors")
    check_unit_norm(r, "reference_descriptors")
    sims, idx = knn_search(q, r, k, metric="ip")
    predictions = _candidates(q, r, qids, rids, sims, idx, k, candidates, None)
    result = _metrics(_encode(predictions, gt))
    if bg is not None:
        offsets = score_normalize(q, bg, k=sn_k, beta=beta)
        predictions = _candidates(q, r, qids, rids, sims - offsets[:, None], idx, k, candidates, offsets)
        sn = _metrics(_encode(predictions, gt))
        result.uAP_sn, result.recall_at_p90_sn, result.accuracy_at_1_sn = (
            sn.uAP,
            sn.recall_at_p90,
            sn.accuracy_at_1,
        )
    return (result, predictions) if return_predictions else result


def _candidates(
    q: np.ndarray,
    r: np.ndarray,
    qids: np.ndarray,
    rids: np.ndarray,
    scores: np.ndarray,
    idx: np.ndarray,
    k: int,
    mode: str,
    offsets: Optional[np.ndarray],
) -> Predictions:
    """Pool the predictions: the k nearest references of every query (``scores``/``idx``, already offset), or
    the exact k x nq best pairs overall (:func:`global_top_pairs`)."""
    if mode == "global":
        rows, cols, best = global_top_pairs(q, r, k * len(q), offsets=offsets, per_query=(scores, idx))
        return Predictions(qids[rows], rids[cols], best)
    return Predictions(
        np.repeat(qids, idx.shape[1]), rids[idx.reshape(-1)], scores.reshape(-1).astype(np.float64)
    )


def global_top_pairs(
    q: np.ndarray,
    r: np.ndarray,
    n: int,
    offsets: Optional[np.ndarray] = None,
    per_query: Optional[Tuple[np.ndarray, np.ndarray]] = None,
    chunk_size: int = 4096,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exactly the ``n`` highest scores s(i, j) = q_i . r_j - offsets[i] over all pairs: (rows, cols, scores).

    The n-th best of the per-query top-k lists (n = k nq of them) is a lower bound tau of the global n-th
    best,
    so a range search at tau (query chunks of ``chunk_size``) returns every pair of the global top n; the
    final cut takes the n best of those (equal scores at the cut are kept in faiss order, as SSCD's
    ``argpartition``). Nothing is capped per query, unlike a top-m-per-query shortlist.
    """
    nq = len(q)
    offsets = np.zeros(nq) if offsets is None else np.asarray(offsets, dtype=np.float64)
    if per_query is None:
        sims, idx = knn_search(q, r, max(1, min(len(r), -(-n // nq))), metric="ip")
        per_query = (sims - offsets[:, None], idx)
    shortlist = per_query[0].reshape(-1).astype(np.float64)
    n = min(n, nq * len(r))
    tau = (
        float(np.partition(shortlist, len(shortlist) - n)[len(shortlist) - n])
        if n <= len(shortlist)
        else -np.inf
    )
    index = faiss.IndexFlatIP(r.shape[1])
    index.add(np.ascontiguousarray(r, dtype=np.float32))
    margin = 1e-5  # faiss' range search and k-NN may round the same inner product differently
    rows, cols, vals = [], [], []
    for start in range(0, nq, chunk_size):
        stop = min(nq, start + chunk_size)
        off = offsets[start:stop]
        radius = (tau + float(off.min()) - margin) if np.isfinite(tau) else -np.inf
        lims, dist, ids = index.range_search(np.ascontiguousarray(q[start:stop]), float(max(radius, -3.0)))
        row = np.repeat(np.arange(start, stop), np.diff(lims).astype(np.int64))
        score = dist.astype(np.float64) - offsets[row]
        keep = score >= tau - margin
        rows.append(row[keep])
        cols.append(ids[keep].astype(np.int64))
        vals.append(score[keep])
    rows, cols, vals = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    if len(vals) > n:
        best = np.argpartition(-vals, n - 1)[:n]
        rows, cols, vals = rows[best], cols[best], vals[best]
    return rows, cols, vals


def trapezoid_average_precision(ranks: Sequence[int], num_positives: int) -> float:
    """AP of one ranked list by the trapezoid rule, as SSCD's Copydays evaluation (``score_ap_from_ranks_1``).

    ``ranks`` are the 0-based ranks of the true positives in increasing order; with t the number of positives
    before rank r, each positive adds (p0 + p1) / (2 num_positives), where p0 = t / r (1 when r = 0) and
    p1 = (t + 1) / (r + 1). Returns a fraction (0 to 1).
    """
    if num_positives <= 0:
        raise ValueError(f"num_positives must be > 0, got {num_positives}")
    ap = 0.0
    for t, r in enumerate(ranks):
        p0 = 1.0 if r == 0 else t / float(r)
        ap += (p0 + (t + 1) / float(r + 1)) / (2.0 * num_positives)
    return ap


def copydays_metrics(
    scores: np.ndarray, hits: np.ndarray, positives_per_query: Sequence[int], strong: np.ndarray
) -> Dict[str, float]:
    """SSCD's CD10K numbers (``sscd/copydays_eval.py``) from each query's ranked list (percent).

    Args:
        scores: [nq, k] similarities of each query's k nearest references, descending per row.
        hits: [nq, k] True where that reference is one of the query's ground-truth references.
        positives_per_query: ground-truth references of each query (several for the "strong" block).
        strong: [nq] True for the queries of the "strong" block.

    Returns ``strong_mAP``: the mean over strong queries of :func:`trapezoid_average_precision` of their list;
    ``overall_uAP``: one trapezoid AP over every query's list pooled and sorted by score, with as many
    positives
    as queries (SSCD's ``score_macro_AP`` default, one positive per query).
    """
    hits = np.asarray(hits, dtype=bool)
    strong = np.asarray(strong, dtype=bool)
    out: Dict[str, float] = {}
    if strong.any():
        aps = [
            trapezoid_average_precision(np.flatnonzero(hits[i]).tolist(), int(positives_per_query[i]))
            for i in np.flatnonzero(strong)
        ]
        out["strong_mAP"] = float(np.mean(aps)) * 100.0
    order = np.argsort(-np.asarray(scores, dtype=np.float64).reshape(-1), kind="stable")
    pooled = hits.reshape(-1)[order]
    out["overall_uAP"] = trapezoid_average_precision(np.flatnonzero(pooled).tolist(), len(hits)) * 100.0
    return out
