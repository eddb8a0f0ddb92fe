"""shared.engine.trainer.GenericTrainer: trains any nn.Module, writes metrics, checkpoints and resumes."""

import json
import os
from collections import OrderedDict

import shared  # noqa: F401  (compat layer before detectron2)
import torch
from detectron2.config import get_cfg
from detectron2.utils.events import EventStorage

from shared.engine.trainer import GenericTrainer


class _Regression(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 1)

    def forward(self, batch):
        x, y = batch
        return {"loss_mse": torch.nn.functional.mse_loss(self.linear(x).squeeze(1), y)}


def _infinite_batches():
    gen = torch.Generator().manual_seed(0)
    w = torch.tensor([1.0, -2.0, 0.5])
    while True:
        x = torch.randn(16, 3, generator=gen)
        yield x, x @ w


class _Trainer(GenericTrainer):
    evaluations = 0
    writer_period = 5

    @classmethod
    def build_model(cls, cfg):
        return _Regression()

    @classmethod
    def build_train_loader(cls, cfg):
        return _infinite_batches()

    @classmethod
    def test(cls, cfg, model):
        cls.evaluations += 1
        error = float((model.linear.weight.detach()[0] - torch.tensor([1.0, -2.0, 0.5])).norm())
        return OrderedDict(toy={"weight_error": error})


def _cfg(out, max_iter):
    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(out)
    cfg.SOLVER.MAX_ITER = max_iter
    cfg.SOLVER.BASE_LR = 0.1
    cfg.SOLVER.WARMUP_ITERS = 0
    cfg.SOLVER.STEPS = ()
    cfg.SOLVER.CHECKPOINT_PERIOD = 10
    cfg.TEST.EVAL_PERIOD = 10
    return cfg


def test_generic_trainer_trains_writes_metrics_and_resumes(tmp_path):
    trainer = _Trainer(_cfg(tmp_path, 20))
    trainer.resume_or_load(resume=False)
    initial_error = _Trainer.test(None, trainer.model)["toy"]["weight_error"]
    results = trainer.train()
    assert _Trainer.evaluations == 3  # the call above, then iterations 10 and 20 (the last one)
    assert results["toy"]["weight_error"] < 0.5 * initial_error  # SGD moved towards the true weights
    lines = [json.loads(line) for line in open(tmp_path / "metrics.json")]
    assert any("total_loss" in line for line in lines)
    assert any("toy/weight_error" in line for line in lines)
    assert os.path.exists(tmp_path / "model_final.pth")
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"

    resumed = _Trainer(_cfg(tmp_path, 25))
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 20
    assert torch.allclose(resumed.model.linear.weight, trainer.model.linear.weight)
    resumed.train()
    assert resumed.iter == 25  # TrainerBase leaves iter one past the last step


class _AutocastProbe(torch.nn.Module):
    """Records the dtype a Linear computes in and whether autocast was on during the forward."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 1)
        self.seen = []

    def forward(self, batch):
        x, y = batch
        out = self.linear(x).squeeze(1)
        self.seen.append((torch.is_autocast_enabled("cpu"), out.dtype))
        return {"loss_mse": torch.nn.functional.mse_loss(out.float(), y)}


class _AmpTrainer(_Trainer):
    @classmethod
    def build_model(cls, cfg):
        return _AutocastProbe()


def test_amp_step_on_cpu_uses_bfloat16_autocast(tmp_path):
    cfg = _cfg(tmp_path, 1)
    cfg.MODEL.DEVICE = "cpu"
    cfg.SOLVER.AMP.ENABLED = True
    trainer = _AmpTrainer(cfg)
    assert (
        trainer.amp_enabled and trainer.amp_dtype == torch.bfloat16 and not trainer.grad_scaler.is_enabled()
    )
    before = trainer.model.linear.weight.detach().clone()
    trainer.resume_or_load(resume=False)
    trainer.iter = trainer.start_iter = 0
    with EventStorage(0):
        trainer.run_step()
    assert trainer.model.seen == [(True, torch.bfloat16)]  # the forward ran under bfloat16 autocast
    assert trainer.model.linear.weight.dtype == torch.float32  # parameters stay float32
    assert not torch.equal(trainer.model.linear.weight.detach(), before)  # and the step updated them
    assert not torch.is_autocast_enabled("cpu")  # nothing leaks out of the step

    cfg.SOLVER.AMP.ENABLED = False
    plain = _AmpTrainer(cfg)
    plain.iter = 0
    with EventStorage(0):
        plain.run_step()
    assert plain.model.seen == [(False, torch.float32)]
