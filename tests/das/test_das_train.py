"""The DAS model's losses against direct pytorch-metric-learning calls, the optimiser groups, and a tiny
end-to-end run: train → evaluate → checkpoint (with the DAS state) → resume, plus metrics.json, the evaluation
history and the retrieval grid."""
import copy
import json
import os

import pytest
import torch
import torch.nn.functional as F

import das  # noqa: F401
from das.trainer import DASTrainer

def test_losses_equal_direct_pml_calls(tiny_cfg):
    torch.manual_seed(0)
    cfg = tiny_cfg("MODEL.DAS.DFS.RANGE", "(0.5, 2.0)", "MODEL.DAS.MTS.SCALE", "0.1")
    model = DASTrainer.build_model(cfg)
    e = F.normalize(torch.randn(8, 16), dim=1)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    producer_copy = copy.deepcopy(model.producer)
    torch.manual_seed(5)
    loss = model.losses(e, y)["loss_metric"]
    torch.manual_seed(5)
    enlarged, labels = producer_copy(e, y)
    assert enlarged.shape == (32, 16)
    expected = model.criterion(enlarged, labels, model.miner(enlarged, labels))
    torch.testing.assert_close(loss, expected)

    baseline = DASTrainer.build_model(tiny_cfg("MODEL.DAS.ENABLED", "False"))
    assert baseline.producer is None
    torch.manual_seed(2)  # the distance-weighted miner samples
    got = baseline.losses(e, y)["loss_metric"]
    torch.manual_seed(2)
    torch.testing.assert_close(got, baseline.criterion(e, y, baseline.miner(e, y)))


def test_aux_loss_adds_the_real_only_term(tiny_cfg):
    cfg = tiny_cfg("MODEL.DAS.AUX_LOSS_WEIGHT", "0.5", "MODEL.MINER.NAME", "none")
    model = DASTrainer.build_model(cfg)
    e = F.normalize(torch.randn(6, 16), dim=1)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    producer_copy = copy.deepcopy(model.producer)
    torch.manual_seed(1)
    out = model.losses(e, y)
    torch.manual_seed(1)
    enlarged, labels = producer_copy(e, y)
    torch.testing.assert_close(out["loss_metric_real"], model.criterion(e, y))
    torch.testing.assert_close(out["loss_metric"], 0.5 * model.criterion(enlarged, labels))


def test_optimizer_puts_margin_beta_in_its_own_group(tiny_cfg):
    cfg = tiny_cfg("MODEL.LOSS.NAME", "margin")
    model = DASTrainer.build_model(cfg)
    opt = DASTrainer.build_optimizer(cfg, model)
    assert isinstance(opt, torch.optim.Adam) and len(opt.param_groups) == 2
    assert opt.param_groups[0]["lr"] == cfg.SOLVER.BASE_LR
    assert opt.param_groups[0]["weight_decay"] == cfg.SOLVER.WEIGHT_DECAY
    assert opt.param_groups[1]["lr"] == 5e-4 and opt.param_groups[1]["weight_decay"] == 0
    assert opt.param_groups[1]["params"][0] is model.criterion.beta
    with pytest.raises(KeyError, match="SOLVER.OPTIMIZER"):
        DASTrainer.build_optimizer(tiny_cfg("SOLVER.OPTIMIZER", "Lion"), model)


def test_frozen_bn_stays_in_eval_mode(tiny_cfg):
    model = DASTrainer.build_model(
        tiny_cfg("MODEL.EMBEDDING.FREEZE_BN", "True", "MODEL.DAS.ENABLED", "False")
    )
    model.train()
    bns = [m for m in model.net.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert model.net.head.training


def test_bad_model_inputs(tiny_cfg):
    with pytest.raises(KeyError, match="BACKBONE 'resnet_nonexistent'"):
        DASTrainer.build_model(tiny_cfg("MODEL.EMBEDDING.BACKBONE", "resnet_nonexistent"))
    with pytest.raises(FileNotFoundError, match="BACKBONE_WEIGHTS"):
        DASTrainer.build_model(tiny_cfg("MODEL.EMBEDDING.BACKBONE_WEIGHTS", "/nonexistent/r50.pth"))
    with pytest.raises(KeyError, match="POOLING"):
        DASTrainer.build_model(tiny_cfg("MODEL.EMBEDDING.POOLING", "gem"))


def test_local_backbone_weights_are_loaded(tmp_path, tiny_cfg):
    import timm

    reference = timm.create_model("test_resnet", num_classes=0, global_pool="")
    path = str(tmp_path / "backbone.pth")
    torch.save(reference.state_dict(), path)
    model = DASTrainer.build_model(tiny_cfg("MODEL.EMBEDDING.BACKBONE_WEIGHTS", path))
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(model.net.backbone.state_dict()[key], value)


def test_train_evaluate_checkpoint_resume(das_dataset_root, tmp_path, monkeypatch, tiny_cfg):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(das_dataset_root))
    out = str(tmp_path / "run")
    opts = [
        "OUTPUT_DIR",
        out,
        "SOLVER.MAX_ITER",
        "4",
        "SOLVER.CHECKPOINT_PERIOD",
        "2",
        "TEST.EVAL_PERIOD",
        "2",
        "TEST.RETRIEVAL.VIS_QUERIES",
        "2",
        "TEST.RETRIEVAL.VIS_TOPK",
        "3",
        "MODEL.DAS.NUM_CLASSES",
        "0",
        "SOLVER.STEPS",
        "(3,)",
    ]
    cfg = tiny_cfg(*opts)
    trainer = DASTrainer(cfg)
    assert trainer.model.producer.num_classes == 4  # filled from DATASETS.TRAIN (8 classes, first half)
    before = copy.deepcopy(trainer.model.net.head.weight.detach())
    trainer.resume_or_load(resume=False)
    results = trainer.train()
    metrics = results["synthetic_birds_test"]
    assert set(metrics) >= {"R@1", "R@2", "NMI", "F1", "MAP@R"}
    assert all(0 <= v <= 100 for v in metrics.values())
    assert metrics["R@1"] <= metrics["R@2"]
    assert not torch.equal(before, trainer.model.net.head.weight.detach())
    counts = trainer.model.producer.frequency.counts
    assert int(counts.sum()) == 4 * 6 * cfg.MODEL.DAS.DFS.NUM_SCALE
    assert os.path.isfile(os.path.join(out, "model_final.pth"))
    assert os.path.isfile(os.path.join(out, "retrieval_synthetic_birds_test.png"))
    with open(os.path.join(out, "metrics.json")) as f:
        lines = [json.loads(line) for line in f]
    assert any("synthetic_birds_test/R@1" in line for line in lines)
    with open(os.path.join(out, "eval_history.json")) as f:
        history = json.load(f)
    assert [h["iter"] for h in history["history"]] == [2, 4]
    assert history["last"]["iter"] == 4 and history["best"]["iter"] in (2, 4)

    saved = torch.load(os.path.join(out, "model_final.pth"), map_location="cpu", weights_only=False)
    assert torch.equal(saved["model"]["producer.frequency.counts"], counts)
    resumed = DASTrainer(tiny_cfg(*opts[:2], "SOLVER.MAX_ITER", "6", *opts[4:]))
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 4
    assert torch.equal(resumed.model.producer.frequency.counts, counts)
    assert torch.equal(resumed.model.producer.banks.bank, trainer.model.producer.banks.bank)
