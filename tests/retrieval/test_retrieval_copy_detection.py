"""Copy-detection metrics: hand-computed DISC21 cases (ties, duplicates, queries without ground truth),
agreement with a direct implementation of the metric definitions (isc2021 metrics.py), score normalisation,
exact global candidates, codecs, unknown ids and bad input."""

import numpy as np
import pytest

import shared  # noqa: F401
from shared.retrieval.copy_detection import (
    Predictions,
    apply_codec,
    evaluate_copy_detection,
    micro_average_precision,
    score_normalize,
)
from shared.retrieval.knn import l2_normalize


def _direct_metrics(preds, gt):
    """isc2021's definitions written as plainly as possible (python lists, one prediction at a time)."""
    gt_pairs = {(q, r) for q, r in gt.items() if r is not None}
    # sort by score descending; among equal scores negatives first (worst case)
    ordered = sorted(preds, key=lambda p: (-p[2], (p[0], p[1]) in gt_pairs))
    tp, uap, prev_recall, best_recall = 0, 0.0, 0.0, None
    for i, (q, r, _) in enumerate(ordered, start=1):
        tp += (q, r) in gt_pairs
        precision, recall = tp / i, tp / len(gt_pairs)
        uap += (recall - prev_recall) * precision
        prev_recall = recall
        if precision >= 0.9:
            best_recall = recall if best_recall is None else max(best_recall, recall)
    correct = 0
    for q, r in gt_pairs:
        mine = [p for p in preds if p[0] == q]
        if mine:
            top = max(p[2] for p in mine)
            winners = [p for p in mine if p[2] == top]
            correct += len(winners) == 1 and winners[0][1] == r
    return uap * 100, None if best_recall is None else best_recall * 100, correct / len(gt_pairs) * 100


def test_hand_computed_ties_and_queries_without_gt():
    preds = [("q1", "r1", 0.9), ("q1", "r2", 0.9), ("q2", "r3", 0.8), ("q3", "r1", 0.5), ("q2", "r4", 0.4)]
    gt = {"q1": "r1", "q2": "r4", "q4": "r9", "q5": None}  # q4 never predicted, q5 has no match, q3 not in gt
    res = micro_average_precision(preds, gt)
    # order: (q1,r2)- (q1,r1)+ (q2,r3)- (q3,r1)- (q2,r4)+ ; |GT| = 3 (q5 dropped)
    assert res.num_gt == 3 and res.num_predictions == 5
    assert res.uAP == pytest.approx((1 / 2 + 2 / 5) / 3 * 100)
    assert res.recall_at_p90 is None
    assert res.accuracy_at_1 == 0.0  # q1: tie at the top counts as a miss; q2: r3 is first
    # breaking the tie in favour of the positive raises precision at the first positive to 1
    res2 = micro_average_precision([("q1", "r1", 0.91)] + preds[1:], gt)
    assert res2.uAP == pytest.approx((1 / 1 + 2 / 5) / 3 * 100)
    assert res2.recall_at_p90 == pytest.approx(100 / 3)
    assert res2.accuracy_at_1 == pytest.approx(100 / 3)


@pytest.mark.parametrize("seed", range(4))
def test_matches_direct_implementation_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    n_q, n_r = 30, 20
    gt = {q: (int(rng.integers(n_r)) if rng.random() < 0.6 else None) for q in range(n_q)}
    pairs = {(int(rng.integers(n_q)), int(rng.integers(n_r))) for _ in range(150)}
    pairs |= {(q, r) for q, r in gt.items() if r is not None and rng.random() < 0.7}
    preds = [(q, r, float(rng.integers(0, 6)) / 5) for q, r in sorted(pairs)]  # coarse scores: many ties
    res = micro_average_precision(preds, gt)
    uap, r90, acc = _direct_metrics(preds, gt)
    assert res.uAP == pytest.approx(uap, abs=1e-9)
    assert res.accuracy_at_1 == pytest.approx(acc, abs=1e-9)
    assert (res.recall_at_p90 is None) == (r90 is None)
    if r90 is not None:
        assert res.recall_at_p90 == pytest.approx(r90)
    arrays = Predictions(*map(np.asarray, zip(*preds)))
    assert micro_average_precision(arrays, list(gt.items())).uAP == pytest.approx(res.uAP)


def test_duplicate_predictions_and_bad_gt_raise():
    with pytest.raises(ValueError, match="duplicate prediction"):
        micro_average_precision([("q", "r", 0.5), ("q", "r", 0.4)], {"q": "r"})
    with pytest.raises(ValueError, match="no \\(query, reference\\) pair with a reference"):
        micro_average_precision([("q", "r", 0.5)], {"q": None})
    with pytest.raises(ValueError, match="same \\(query, reference\\) pair twice"):
        micro_average_precision([("q", "r", 0.5)], [("q", "r"), ("q", "r")])
    with pytest.raises(ValueError, match="NaN"):
        micro_average_precision([("q", "r", float("nan"))], {"q": "r"})
    with pytest.raises(ValueError, match="triples"):
        micro_average_precision([("q", "r")], {"q": "r"})


def _descriptors(seed=0, n_ref=300, n_pos=60, n_neg=60, d=32, noise=0.6):
    rng = np.random.default_rng(seed)
    refs = l2_normalize(rng.normal(size=(n_ref, d)))
    pos = l2_normalize(refs[:n_pos] + noise * rng.normal(size=(n_pos, d)) / np.sqrt(d) * 4)
    queries = np.vstack([pos, l2_normalize(rng.normal(size=(n_neg, d)))])
    background = l2_normalize(rng.normal(size=(400, d)))
    return queries, refs, {i: i for i in range(n_pos)}, background


def test_end_to_end_and_score_normalisation_equals_augmented_vectors():
    q, r, gt, bg = _descriptors()
    res = evaluate_copy_detection(q, r, gt, k=10, background_descriptors=bg)
    assert res.num_predictions == len(q) * 10 and res.num_gt == 60
    # the score-normalisation trick: append -beta*m to each query and 1 to each reference, then
    # inner-product retrieval
    offsets = score_normalize(q, bg, k=3, beta=1.0)
    sims_bg = np.sort(q @ bg.T, axis=1)[:, ::-1][:, :3]
    np.testing.assert_allclose(offsets, sims_bg.mean(1), rtol=1e-5)
    q_aug = np.hstack([q, -offsets[:, None]])
    r_aug = np.hstack([r, np.ones((len(r), 1))])
    scores = q_aug @ r_aug.T
    top = np.argsort(-scores, axis=1)[:, :10]
    preds = [(i, int(j), float(scores[i, j])) for i in range(len(q)) for j in top[i]]
    direct = _direct_metrics(preds, gt)
    assert res.uAP_sn == pytest.approx(direct[0], abs=1e-4)
    assert res.accuracy_at_1_sn == pytest.approx(direct[2])
    assert res.accuracy_at_1_sn == res.accuracy_at_1  # normalisation never changes a query's own ranking


def _exact_global(scores, n):
    """The n best (query, reference) pairs of a dense score matrix, by a plain sort."""
    order = np.argsort(-scores, axis=None, kind="stable")[:n]
    return [(int(i), int(j), float(scores[i, j])) for i, j in zip(*np.unravel_index(order, scores.shape))]


def test_global_candidates_are_the_exact_best_pairs_overall():
    q, r, gt, bg = _descriptors(3)
    res, preds = evaluate_copy_detection(q, r, gt, k=2, candidates="global", return_predictions=True)
    assert res.num_predictions == 2 * len(q)
    direct = _exact_global((q @ r.T).astype(np.float64), 2 * len(q))
    assert res.uAP == pytest.approx(_direct_metrics(direct, gt)[0], abs=1e-6)
    assert sorted(zip(preds.query.tolist(), preds.reference.tolist())) == sorted((i, j) for i, j, _ in direct)
    # with score normalisation the selection is redone on the normalised scores
    res_sn = evaluate_copy_detection(q, r, gt, k=2, candidates="global", background_descriptors=bg)
    offsets = score_normalize(q, bg)
    direct_sn = _exact_global((q @ r.T).astype(np.float64) - offsets[:, None], 2 * len(q))
    assert res_sn.uAP_sn == pytest.approx(_direct_metrics(direct_sn, gt)[0], abs=1e-5)
    with pytest.raises(ValueError, match="candidates"):
        evaluate_copy_detection(q, r, gt, candidates="all")


def test_global_candidates_are_not_capped_per_query():
    """One query owns more than 100 of the global top pairs: all of them are kept (a 100-per-query shortlist
    would drop some and change µAP)."""
    rng = np.random.default_rng(7)
    d, n_ref, n_q = 16, 400, 30
    refs = l2_normalize(rng.normal(size=(n_ref, d)))
    hub = refs[:150].mean(0)  # query 0 is close to 150 references
    queries = l2_normalize(np.vstack([hub, rng.normal(size=(n_q - 1, d))]))
    refs[:150] = l2_normalize(refs[:150] * 0.05 + hub)
    gt = {i: int(rng.integers(150, n_ref)) for i in range(1, n_q)}
    gt[0] = int(np.argsort(-(queries[0] @ refs.T))[120])  # query 0's copy is its 121st neighbour
    k = 10
    res, preds = evaluate_copy_detection(queries, refs, gt, k=k, candidates="global", return_predictions=True)
    assert int((preds.query == 0).sum()) > 100
    direct = _exact_global((queries @ refs.T).astype(np.float64), k * n_q)
    assert sum(1 for i, _, _ in direct if i == 0) > 100
    assert res.uAP == pytest.approx(_direct_metrics(direct, gt)[0], abs=1e-6)
    scores = queries @ refs.T
    capped = [(i, int(j), float(scores[i, j])) for i in range(n_q) for j in np.argsort(-scores[i])[:100]]
    capped = sorted(capped, key=lambda p: -p[2])[: k * n_q]  # the former 100-per-query shortlist
    assert _direct_metrics(capped, gt)[0] == 0.0 < res.uAP  # the copy was cut by the shortlist


def test_unknown_ids_are_an_error_naming_the_closest_known_id():
    """An id with an extension, a typo or an unknown id used to count as a miss (µAP 0, exit status 0)."""
    q, r, gt, _ = _descriptors(1)
    qids = np.array([f"Q{i:05d}" for i in range(len(q))])
    rids = np.array([f"R{i:06d}" for i in range(len(r))])
    named = {qids[qi]: rids[ri] for qi, ri in gt.items()}
    with_extension = {f"{k}.jpg": v for k, v in named.items()}
    with pytest.raises(
        ValueError,
        match=r"60 of the 60 ground-truth query ids .*'Q00000.jpg'.*closest known id "
        r"to 'Q00000.jpg' is 'Q00000'",
    ):
        evaluate_copy_detection(q, r, with_extension, query_ids=qids, reference_ids=rids, k=5)
    typo = dict(named)
    typo["Q00003"] = "R00O003"  # letter O for a zero
    with pytest.raises(ValueError, match=r"1 of the 60 ground-truth reference ids.*'R00O003'.*'R000003'"):
        evaluate_copy_detection(q, r, typo, query_ids=qids, reference_ids=rids, k=5)
    preds = [("Q00000", "R000000", 0.9), ("Q99999", "R000001", 0.8)]
    with pytest.raises(ValueError, match=r"prediction query ids.*'Q99999'"):
        micro_average_precision(preds, {"Q00000": "R000000"}, query_ids=qids, reference_ids=rids)
    ok = micro_average_precision(preds[:1], {"Q00000": "R000000"}, query_ids=qids, reference_ids=rids)
    assert ok.uAP == pytest.approx(100.0)


def test_ids_and_codec():
    q, r, gt, bg = _descriptors(1)
    qids = np.array([f"Q{i:05d}" for i in range(len(q))])
    rids = np.array([f"R{i:06d}" for i in range(len(r))])
    gt_named = {qids[qi]: rids[ri] for qi, ri in gt.items()}
    a = evaluate_copy_detection(q, r, gt, k=5)
    b = evaluate_copy_detection(q, r, gt_named, query_ids=qids, reference_ids=rids, k=5)
    assert a.uAP == pytest.approx(b.uAP) and a.accuracy_at_1 == b.accuracy_at_1
    whitened = apply_codec(q, "PCAW16,L2norm,Flat", bg)
    assert whitened.shape == (len(q), 16)
    np.testing.assert_allclose(np.linalg.norm(whitened, axis=1), 1.0, rtol=1e-5)
    c = evaluate_copy_detection(
        q, r, gt, k=5, codec="PCAW16,L2norm,Flat", codec_train=bg, background_descriptors=bg
    )
    assert 0.0 <= c.uAP <= 100.0 and c.uAP_sn is not None


def test_copy_detection_bad_input():
    q, r, gt, bg = _descriptors(2)
    with pytest.raises(ValueError, match="L2-normalised"):
        evaluate_copy_detection(q * 2.0, r, gt)
    with pytest.raises(ValueError, match="L2-normalised"):
        score_normalize(q, bg * 3.0)
    with pytest.raises(ValueError, match="larger than the searchable database"):
        evaluate_copy_detection(q, r[:5], {i: i for i in range(5)}, k=10)
    with pytest.raises(ValueError, match="empty"):
        evaluate_copy_detection(q[:0], r, gt)
    with pytest.raises(ValueError, match="must be trained"):
        evaluate_copy_detection(q, r, gt, codec="PCAW16,L2norm,Flat")
    with pytest.raises(ValueError, match="length"):
        evaluate_copy_detection(q, r, gt, query_ids=np.arange(3))
    with pytest.raises(ValueError, match="unique"):
        evaluate_copy_detection(q, r, gt, reference_ids=np.zeros(len(r), dtype=int))
