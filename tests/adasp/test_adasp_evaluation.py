"""SharedReidEvaluator (fastreid interface, shared.retrieval metrics) vs fastreid's own ReidEvaluator."""
import numpy as np
import pytest
import torch

import adasp  # noqa: F401
from adasp.evaluation import SharedReidEvaluator
from fastreid.config import get_cfg
from fastreid.evaluation import ReidEvaluator


def _feed(evaluator, feats, pids, camids, batch=7):
    evaluator.reset()
    for start in range(0, len(feats), batch):
        sl = slice(start, start + batch)
        inputs = {"targets": torch.as_tensor(pids[sl]), "camids": torch.as_tensor(camids[sl])}
        evaluator.process(inputs, feats[sl])
    return evaluator.evaluate()


def _fixture(seed=0, num_ids=12, dim=16):
    rng = np.random.RandomState(seed)
    centres = rng.randn(num_ids, dim)
    q_pids = np.arange(num_ids).repeat(2)
    q_cams = np.tile([0, 1], num_ids)
    g_pids = np.concatenate([np.arange(num_ids).repeat(3), [0, 0]])  # some same-camera "junk" entries too
    g_cams = np.concatenate([np.tile([0, 2, 3], num_ids), [4, 5]])
    pids = np.concatenate([q_pids, g_pids]).astype(np.int32)  # int32 on purpose (fastreid#74)
    camids = np.concatenate([q_cams, g_cams]).astype(np.int32)
    feats = torch.from_numpy(centres[pids] + 1.2 * rng.randn(len(pids), dim)).float()
    return feats, pids, camids, len(q_pids)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_matches_fastreid_reid_evaluator(metric):
    cfg = get_cfg()
    cfg.TEST.METRIC = metric
    feats, pids, camids, num_query = _fixture()
    ours = _feed(SharedReidEvaluator(cfg, num_query), feats, pids, camids)
    ref = _feed(ReidEvaluator(cfg, num_query), feats, pids, camids)
    assert list(ours) == ["Rank-1", "Rank-5", "Rank-10", "mAP", "mINP", "metric"]
    for key in ours:
        assert ours[key] == pytest.approx(float(ref[key]), abs=1e-4), key
    assert 0 < ours["mAP"] < 100  # a non-trivial ranking


def test_aqe_path_matches_fastreid():
    cfg = get_cfg()
    cfg.TEST.AQE.ENABLED = True
    feats, pids, camids, num_query = _fixture(seed=1)
    ours = _feed(SharedReidEvaluator(cfg, num_query), feats, pids, camids)
    ref = _feed(ReidEvaluator(cfg, num_query), feats, pids, camids)
    assert ours["mAP"] == pytest.approx(float(ref["mAP"]), abs=1e-4)


def test_bad_configurations_raise_clear_errors():
    cfg = get_cfg()
    feats, pids, camids, _ = _fixture()
    with pytest.raises(ValueError, match="num_query"):
        _feed(SharedReidEvaluator(cfg, 0), feats, pids, camids)
    with pytest.raises(ValueError, match="no predictions"):
        SharedReidEvaluator(cfg, 3).evaluate()


def test_rerank_runs_on_cpu_through_shared_retrieval():
    from shared.retrieval.reid import evaluate_reid, rerank_k_reciprocal

    cfg = get_cfg()
    cfg.TEST.RERANK.ENABLED = True
    cfg.TEST.RERANK.K1, cfg.TEST.RERANK.K2 = 8, 3
    feats, pids, camids, num_query = _fixture(seed=2)
    ours = _feed(SharedReidEvaluator(cfg, num_query), feats, pids, camids)
    distmat = rerank_k_reciprocal(feats[:num_query], feats[num_query:], k1=8, k2=3, lambda_value=0.3)
    expected = evaluate_reid(distmat, pids[:num_query], pids[num_query:], camids[:num_query],
                             camids[num_query:])
    assert ours["mAP"] == pytest.approx(expected.mAP, abs=1e-6)
    assert ours["Rank-1"] == pytest.approx(expected.rank1, abs=1e-6)
    cfg.TEST.RERANK.ENABLED = False
    plain = _feed(SharedReidEvaluator(cfg, num_query), feats, pids, camids)
    assert plain["mAP"] != pytest.approx(ours["mAP"], abs=1e-6)  # re-ranking really changed the ranking
