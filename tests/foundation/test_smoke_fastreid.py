"""Smoke tests: a FastReID Baseline training step on CPU, and its rank evaluation (Cython vs Python)."""
import numpy as np
import pytest
import torch

import shared  # noqa: F401
from fastreid.config import get_cfg
from fastreid.evaluation.rank import evaluate_rank
from fastreid.modeling import build_model
from fastreid.utils.events import EventStorage


def test_fastreid_baseline_one_training_step_on_cpu():
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.BACKBONE.DEPTH = "18x"
    cfg.MODEL.BACKBONE.FEAT_DIM = 512
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.HEADS.NUM_CLASSES = 4
    cfg.MODEL.LOSSES.NAME = ("CrossEntropyLoss", "TripletLoss")
    cfg.INPUT.SIZE_TRAIN = [64, 32]
    model = build_model(cfg)
    model.train()
    images = torch.rand(8, 3, 64, 32) * 255
    targets = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    with EventStorage(0):
        losses = model({"images": images, "targets": targets})
    assert set(losses) == {"loss_cls", "loss_triplet"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    model.eval()
    with torch.no_grad():
        feats = model({"images": images})
    assert feats.shape == (8, 512)


def test_fastreid_default_optimizer_really_updates_weights():
    """fastreid's ContiguousParams optimizer never steps under torch 2 unless shared.compat fixes it."""
    from fastreid.engine.defaults import DefaultTrainer
    from fastreid.solver import build_optimizer

    cfg = get_cfg()
    cfg.SOLVER.OPT = "SGD"
    cfg.SOLVER.BASE_LR = 0.1
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    for optimizer, _ in (build_optimizer(cfg, model), DefaultTrainer.build_optimizer(cfg, model)):
        before = model[0].weight.detach().clone()
        for _ in range(2):  # the second iteration is the one the torch-2 zero_grad broke
            optimizer.zero_grad()
            model(torch.ones(2, 4)).sum().backward()
            optimizer.step()
        assert not torch.equal(before, model[0].weight), "optimizer did not update the weights"


def _rank_inputs(seed=0, nq=20, ng=80):
    rng = np.random.default_rng(seed)
    distmat = rng.random((nq, ng)).astype(np.float32)
    q_pids = rng.integers(0, 8, nq)
    g_pids = rng.integers(0, 8, ng)
    q_camids = rng.integers(0, 3, nq)
    g_camids = rng.integers(0, 3, ng)
    return distmat, q_pids, g_pids, q_camids, g_camids


def test_evaluate_rank_cython_matches_python():
    try:
        from fastreid.evaluation.rank_cylib.rank_cy import evaluate_cy  # noqa: F401
    except ImportError:
        pytest.skip("fastreid's Cython evaluator is not built")
    args = _rank_inputs()
    cmc_cy, map_cy, minp_cy = evaluate_rank(*args, max_rank=10, use_cython=True)
    cmc_py, map_py, minp_py = evaluate_rank(*args, max_rank=10, use_cython=False)
    # fastreid returns the CMC curve and the per-query AP / INP lists
    np.testing.assert_array_equal(cmc_cy, cmc_py)
    np.testing.assert_allclose(map_cy, map_py, atol=1e-6)
    np.testing.assert_allclose(minp_cy, minp_py, atol=1e-6)
    assert len(map_py) > 0


def test_evaluate_rank_hand_computed():
    # one query (pid 1, cam 0); gallery sorted by distance: [pid1 cam0 (removed), pid2, pid1 cam1, pid1 cam2]
    distmat = np.array([[0.1, 0.2, 0.3, 0.4]], dtype=np.float32)
    g_pids, g_cams = np.array([1, 2, 1, 1]), np.array([0, 1, 1, 2])
    cmc, all_ap, all_inp = evaluate_rank(distmat, np.array([1]), g_pids, np.array([0]), g_cams, max_rank=3,
                                   use_cython=False)
    np.testing.assert_allclose(cmc, [0.0, 1.0, 1.0])
    assert np.mean(all_ap) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert np.mean(all_inp) == pytest.approx(2 / 3)
