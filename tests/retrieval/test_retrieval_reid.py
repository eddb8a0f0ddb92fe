"""ReID metrics: parity with fastreid.evaluation.rank.evaluate_rank (Cython and Python paths),
hand-computed values, tie semantics, the features-to-metrics path, and bad input."""
import numpy as np
import pytest
import torch

import shared  # noqa: F401  (compat layer before fastreid)
from shared.retrieval import reid as reid_module
from shared.retrieval.reid import ReIDResult, compute_distmat, evaluate_reid, evaluate_reid_features

from fastreid.evaluation import rank as fr_rank  # noqa: E402
from fastreid.utils.compute_dist import build_dist  # noqa: E402


@pytest.fixture(params=["auto", "dense", "sparse"])
def ranking_path(request, monkeypatch):
    """Run a test with the automatic choice, and with every block forced to one of the two ranking
    strategies."""
    fraction = {"auto": reid_module.SPARSE_BLOCK_FRACTION, "dense": 0.0, "sparse": 2.0}[request.param]
    monkeypatch.setattr(reid_module, "SPARSE_BLOCK_FRACTION", fraction)
    return request.param


def _reid_data(seed, nq=150, ng=700, d=32, npid=50, ncam=4, noise=1.5):
    rng = np.random.default_rng(seed)
    g_pids = rng.integers(0, npid, ng)
    q_pids = rng.integers(0, npid + 8, nq)  # some query identities are absent from the gallery
    g_cams = rng.integers(0, ncam, ng)
    q_cams = rng.integers(0, ncam, nq)
    centres = rng.normal(size=(npid + 8, d))
    qf = (centres[q_pids] + noise * rng.normal(size=(nq, d))).astype(np.float32)
    gf = (centres[g_pids] + noise * rng.normal(size=(ng, d))).astype(np.float32)
    return qf, gf, q_pids, g_pids, q_cams, g_cams


def _assert_parity(res: ReIDResult, ref):
    cmc, all_ap, all_inp = ref
    np.testing.assert_array_equal(res.cmc, cmc)  # CMC exactly
    assert abs(res.mAP / 100 - np.mean(all_ap)) < 1e-6
    assert abs(res.mINP / 100 - np.mean(all_inp)) < 1e-6
    assert res.num_valid_queries == len(all_ap)
    np.testing.assert_allclose(res.all_ap, all_ap, atol=1e-6)
    np.testing.assert_allclose(res.all_inp, all_inp, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parity_with_fastreid_evaluate_rank(seed, ranking_path):
    _check_parity(seed, use_cython=True)


def test_parity_with_fastreid_python_path():
    _check_parity(3, use_cython=False)


def _check_parity(seed, use_cython):
    qf, gf, qp, gp, qc, gc = _reid_data(seed)
    dist = compute_distmat(qf, gf)
    ref = fr_rank.evaluate_rank(dist, qp, gp, qc, gc, max_rank=50, use_cython=use_cython)
    res = evaluate_reid(dist, qp, gp, qc, gc, max_rank=50)
    _assert_parity(res, ref)
    assert res.rank1 == pytest.approx(ref[0][0] * 100) and res.rank10 == pytest.approx(ref[0][9] * 100)


def test_cython_path_is_available():
    assert fr_rank.IS_CYTHON_AVAI, "fastreid's rank_cy is not built; parity would only cover the Python path"


# nearly perfect (sparse blocks) and poor (dense blocks) features
@pytest.mark.parametrize("noise", [0.3, 3.0])
def test_parity_euclidean(noise):
    qf, gf, qp, gp, qc, gc = _reid_data(5, nq=60, ng=300, npid=20, noise=noise)
    dist = compute_distmat(qf, gf, metric="euclidean")
    _assert_parity(evaluate_reid(dist, qp, gp, qc, gc), fr_rank.evaluate_rank(dist, qp, gp, qc, gc, 50))


def test_gallery_smaller_than_max_rank():
    # FastReID clips max_rank to the gallery size; when the same-camera removal leaves fewer entries than
    # that, its Python path crashes and its Cython path reads stale buffer entries. Here the CMC simply stays
    # at its final value.
    qf, gf, qp, gp, qc, gc = _reid_data(5, nq=40, ng=30, npid=6, ncam=2)
    res = evaluate_reid(compute_distmat(qf, gf), qp, gp, qc, gc, max_rank=50)
    assert len(res.cmc) == 30 and res.cmc[-1] == 1.0
    assert np.all(np.diff(res.cmc) >= 0)


def test_compute_distmat_equals_fastreid_build_dist():
    qf, gf, *_ = _reid_data(3, nq=20, ng=50)
    for metric in ("cosine", "euclidean"):
        ours = compute_distmat(qf, gf, metric)
        theirs = build_dist(torch.from_numpy(qf), torch.from_numpy(gf), metric)
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4)


def test_features_path_equals_distmat_path():
    qf, gf, qp, gp, qc, gc = _reid_data(4)
    for metric in ("cosine", "euclidean"):
        a = evaluate_reid(compute_distmat(qf, gf, metric), qp, gp, qc, gc)
        b = evaluate_reid_features(qf, gf, qp, gp, qc, gc, metric=metric, chunk_size=33)
        np.testing.assert_array_equal(a.cmc, b.cmc)
        assert a.mAP == pytest.approx(b.mAP, abs=1e-9) and a.mINP == pytest.approx(b.mINP, abs=1e-9)


def test_hand_computed_example(ranking_path):
    # one query (pid 1, cam 0); gallery sorted by distance: [junk(1,c0), neg, pos(1,c1), neg, pos(1,c2)]
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]], dtype=np.float32)
    g_pids = np.array([1, 2, 1, 3, 1])
    g_cams = np.array([0, 1, 1, 0, 2])
    res = evaluate_reid(dist, [1], g_pids, [0], g_cams)
    # after removing the junk entry: [neg, pos, neg, pos] -> ranks 2 and 4
    assert res.rank1 == 0.0 and res.rank5 == 100.0
    assert res.mAP == pytest.approx((1 / 2 + 2 / 4) / 2 * 100)
    assert res.mINP == pytest.approx(2 / 4 * 100)
    # length = gallery size
    np.testing.assert_array_equal(res.cmc, np.array([0, 1, 1, 1, 1], dtype=np.float32))
    assert res.as_dict()["metric"] == pytest.approx((res.mAP + res.rank1) / 2)


def _stable_reference(dist, qp, gp, qc, gc):
    """Direct implementation of the protocol with a *stable* argsort (this module's documented tie rule)."""
    aps, first = [], []
    for i in range(len(qp)):
        order = np.argsort(dist[i], kind="stable")
        keep = ~((gp[order] == qp[i]) & (gc[order] == qc[i]))
        match = (gp[order] == qp[i])[keep]
        if not match.any():
            continue
        hits = np.nonzero(match)[0]
        aps.append(np.mean(np.arange(1, len(hits) + 1) / (hits + 1)))
        first.append(hits[0])
    return np.mean(aps), np.asarray(first)


def _assert_stable_order_result(dist, seed, max_rank):
    rng = np.random.default_rng(seed)
    nq, ng = dist.shape
    gp, qp = rng.integers(0, 8, ng), rng.integers(0, 8, nq)
    gc, qc = rng.integers(0, 3, ng), rng.integers(0, 3, nq)
    res = evaluate_reid(dist, qp, gp, qc, gc, max_rank=max_rank)
    m_ap, first = _stable_reference(dist, qp, gp, qc, gc)
    assert res.mAP == pytest.approx(m_ap * 100, abs=1e-9)
    expected_cmc = np.bincount(first, minlength=ng)[:max_rank].cumsum() / len(first)
    np.testing.assert_array_equal(res.cmc, expected_cmc.astype(np.float32))


def test_ties_follow_stable_gallery_order(ranking_path):
    dist = np.random.default_rng(7).integers(0, 4, size=(60, 80)).astype(np.float32)  # massive exact ties
    _assert_stable_order_result(dist, 17, max_rank=20)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_negative_distances_and_signed_zeros_tie_like_equal_values(ranking_path, dtype):
    # euclidean distances from addmm can be slightly negative, and -0.0 == 0.0 must count as a tie
    rng = np.random.default_rng(8)
    dist = (rng.integers(-2, 3, size=(50, 90)) * 0.5).astype(dtype)
    dist[rng.random(dist.shape) < 0.2] = -0.0
    _assert_stable_order_result(dist, 18, max_rank=30)


def test_reid_bad_input():
    dist = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="length"):
        evaluate_reid(dist, [1], [1, 2, 3], [0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="no query has a true match"):
        evaluate_reid(dist, [7, 8], [1, 2, 3], [0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="non-empty"):
        evaluate_reid(np.zeros((0, 3)), [], [1, 2, 3], [], [1, 1, 1])
    nan = dist.copy()
    nan[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        evaluate_reid(nan, [1, 2], [1, 2, 3], [0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="NaN"):
        compute_distmat(np.full((2, 4), np.nan), np.ones((3, 4)))
    with pytest.raises(ValueError, match="unknown ReID metric"):
        compute_distmat(np.ones((2, 4)), np.ones((3, 4)), metric="jaccard")
    # same pid AND same camera everywhere: every true match is removed (the metric-learning trap of §6)
    with pytest.raises(ValueError, match="no query has a true match"):
        evaluate_reid(dist, [1, 1], [1, 1, 1], [0, 0], [0, 0, 0])
