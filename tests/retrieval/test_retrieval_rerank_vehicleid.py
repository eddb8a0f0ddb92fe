"""k-reciprocal re-ranking on CPU (parity with FastReID's compute_jaccard_distance, CPU search option) and the
seeded VehicleID protocol."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import shared  # noqa: F401
from shared.retrieval.reid import compute_distmat, evaluate_reid, rerank_k_reciprocal
from shared.retrieval.rerank import jaccard_distance
from shared.retrieval.vehicleid import (
    VEHICLEID_TEST_LISTS,
    evaluate_vehicleid,
    read_vehicleid_test_list,
    vehicleid_split,
)

from fastreid.evaluation.rank import evaluate_rank  # noqa: E402
from fastreid.utils.compute_dist import compute_jaccard_distance  # noqa: E402


def _features(seed=0, nq=40, ng=160, d=16, ids=20):
    rng = np.random.default_rng(seed)
    pids = rng.integers(0, ids, nq + ng)
    f = (rng.normal(size=(ids, d))[pids] + rng.normal(size=(nq + ng, d))).astype(np.float32)
    cams = rng.integers(0, 3, nq + ng)
    return f[:nq], f[nq:], pids[:nq], pids[nq:], cams[:nq], cams[nq:]


@pytest.mark.parametrize("metric,k1,k2",
                         [("cosine", 20, 6), ("euclidean", 20, 6), ("cosine", 7, 1), ("cosine", 5, 3)])
def test_rerank_matches_fastreid_jaccard_on_cpu(metric, k1, k2):
    qf, gf, *_ = _features()
    ours = rerank_k_reciprocal(qf, gf, k1=k1, k2=k2, lambda_value=0.3, metric=metric)
    feats = torch.from_numpy(np.vstack([qf, gf]))
    if metric == "cosine":
        feats = F.normalize(feats, dim=1)
    # FastReID's own function with its CPU faiss branch (search_option=3; build_dist hard-codes the GPU one)
    jac = compute_jaccard_distance(feats, k1=k1, k2=k2, search_option=3)[: len(qf), len(qf):]
    reference = jac * 0.7 + compute_distmat(qf, gf, metric) * 0.3
    np.testing.assert_allclose(ours, reference, atol=2e-6)


def test_rerank_improves_or_keeps_a_clustered_retrieval():
    qf, gf, qp, gp, qc, gc = _features(1, nq=60, ng=300)
    base = evaluate_reid(compute_distmat(qf, gf), qp, gp, qc, gc)
    rr = evaluate_reid(rerank_k_reciprocal(qf, gf), qp, gp, qc, gc)
    assert rr.mAP > base.mAP  # k-reciprocal re-ranking is known to raise mAP on identity-clustered data


def test_jaccard_bad_input():
    f = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="num_query"):
        jaccard_distance(f, 10)
    with pytest.raises(ValueError, match="k1"):
        jaccard_distance(f, 3, k1=11)


def test_vehicleid_split_is_seeded_and_one_gallery_image_per_id():
    pids = np.repeat(np.arange(30), np.random.default_rng(0).integers(1, 6, 30))
    q1, g1 = vehicleid_split(pids, seed=3)
    q2, g2 = vehicleid_split(pids, seed=3)
    np.testing.assert_array_equal(q1, q2)
    np.testing.assert_array_equal(g1, g2)
    assert sorted(pids[g1].tolist()) == list(range(30))  # exactly one gallery image per id
    assert sorted(np.concatenate([q1, g1]).tolist()) == list(range(len(pids)))
    q3, _ = vehicleid_split(pids, seed=4)
    assert not np.array_equal(np.sort(q1), np.sort(q3))
    assert set(VEHICLEID_TEST_LISTS) == {"small", "medium", "large"}


def test_vehicleid_evaluation_matches_fastreid_on_the_same_split(tmp_path):
    rng = np.random.default_rng(2)
    pids = np.repeat(np.arange(40), 4)
    x = (rng.normal(size=(40, 8))[pids] + rng.normal(size=(len(pids), 8))).astype(np.float32)
    res = evaluate_vehicleid(x, pids, seed=11)
    q, g = vehicleid_split(pids, seed=11)
    cams = np.arange(len(pids))  # camid = image id: nothing is removed
    cmc, ap, inp = evaluate_rank(compute_distmat(x[q], x[g]), pids[q], pids[g], cams[q], cams[g], 50)
    np.testing.assert_array_equal(res.cmc, cmc)
    assert res.mAP == pytest.approx(np.mean(ap) * 100, abs=1e-4)
    avg = evaluate_vehicleid(x, pids, seed=11, num_splits=3)
    assert avg.num_valid_queries == 120 and len(avg.all_ap) == 360
    lst = tmp_path / "test_list_800.txt"
    lst.write_text("0001 5\n0002 5\n\n0003 7\n")
    images, vids = read_vehicleid_test_list(str(lst))
    assert images.tolist() == ["0001", "0002", "0003"] and vids.tolist() == [5, 5, 7]
    lst.write_text("0001 5 extra\n")
    with pytest.raises(ValueError, match="expected"):
        read_vehicleid_test_list(str(lst))
    with pytest.raises(FileNotFoundError):
        read_vehicleid_test_list(str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="single image"):
        evaluate_vehicleid(x[:5], np.arange(5))
