"""A detectron2-style trainer for models that are not detectors (descriptor learning, segmentation, ...).

detectron2's ``DefaultTrainer`` hard-wires detection pieces (``build_detection_train_loader``, COCO
evaluators, ``cfg.SOLVER.AMP``, ``cfg.TEST.PRECISE_BN``...). :class:`GenericTrainer` keeps its *shape*
-- a :class:`~detectron2.engine.TrainerBase` that wraps a :class:`~detectron2.engine.SimpleTrainer`,
the standard hooks (iteration timer, LR scheduler, periodic atomic checkpoints, evaluation, console +
``metrics.json`` + TensorBoard writers), ``resume_or_load`` and DDP wrapping -- and leaves the four
project-specific pieces to a subclass:

* :meth:`GenericTrainer.build_model` (required) -- any ``nn.Module`` whose ``forward(batch)`` returns a
  dict of scalar losses in training mode;
* :meth:`GenericTrainer.build_train_loader` (required) -- an iterable that yields ``batch`` forever;
* :meth:`GenericTrainer.build_optimizer` / :meth:`GenericTrainer.build_lr_scheduler` (default:
  detectron2's SGD over the trainable parameters and its ``WarmupMultiStepLR``/``WarmupCosineLR``);
* :meth:`GenericTrainer.test` (default: no evaluation) -- returns a (nested) dict of metrics.

Config keys read here (all present in detectron2's ``get_cfg()``): ``OUTPUT_DIR``, ``MODEL.WEIGHTS``,
``SOLVER.MAX_ITER``, ``SOLVER.CHECKPOINT_PERIOD``, ``TEST.EVAL_PERIOD``, ``SOLVER.AMP.ENABLED`` (mixed
precision, see :meth:`GenericTrainer.autocast`) and the ``SOLVER`` keys used by the default optimizer /
scheduler builders.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
import weakref
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Optional

import torch
from detectron2.engine import SimpleTrainer, TrainerBase, hooks
from detectron2.engine.defaults import create_ddp_model
from detectron2.solver import build_lr_scheduler as d2_build_lr_scheduler
from detectron2.solver import build_optimizer as d2_build_optimizer
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, EventWriter, JSONWriter, TensorboardXWriter
from detectron2.utils.logger import setup_logger

from shared.engine.checkpoint import AtomicCheckpointing, _rng_neutral_eval

__all__ = ["GenericTrainer"]


class GenericTrainer(AtomicCheckpointing, TrainerBase):
    """``DefaultTrainer`` without the detection parts; subclass it and implement the ``build_*`` methods.

    Usage::

        class Trainer(GenericTrainer):
            @classmethod
            def build_model(cls, cfg): ...
            @classmethod
            def build_train_loader(cls, cfg): ...
            @classmethod
            def test(cls, cfg, model): return {"my_dataset": {"metric": 1.0}}

        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        trainer.train()
    """

    #: how often (in iterations) the console / json / tensorboard writers run
    writer_period: int = 20

    def __init__(self, cfg) -> None:
        super().__init__()
        logger = logging.getLogger("detectron2")
        if not logger.isEnabledFor(logging.INFO):  # setup_logger was not called by the script
            setup_logger()
        if comm.is_main_process() and cfg.OUTPUT_DIR:
            os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)  # metrics.json, events and checkpoints go there
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)

        model = create_ddp_model(model, broadcast_buffers=False)
        self._trainer = SimpleTrainer(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        # strict=None: a resume or a full-model MODEL.WEIGHTS must fit entirely, backbone-only files need not
        self.checkpointer = self.build_checkpointer(model, cfg, strict=None, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = int(cfg.SOLVER.MAX_ITER)
        self.cfg = cfg
        self._last_eval_results: Optional[Dict[str, Any]] = None
        self._setup_amp(cfg)
        self.register_hooks(self.build_hooks())

    # ------------------------------------------------------------------ pieces a project provides
    @classmethod
    def build_model(cls, cfg) -> torch.nn.Module:
        """The model, already on its device; ``forward(batch)`` returns a loss dict when training."""
        raise NotImplementedError(f"{cls.__name__} must implement build_model(cfg)")

    @classmethod
    def build_train_loader(cls, cfg) -> Iterable:
        """An (infinite) iterable of training batches, each passed unchanged to ``model(batch)``."""
        raise NotImplementedError(f"{cls.__name__} must implement build_train_loader(cfg)")

    @classmethod
    def build_optimizer(cls, cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
        """detectron2's default: SGD with ``SOLVER.BASE_LR/MOMENTUM/WEIGHT_DECAY`` on trainable params."""
        return d2_build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer: torch.optim.Optimizer):
        """detectron2's default: ``SOLVER.LR_SCHEDULER_NAME`` with linear/constant warm-up."""
        return d2_build_lr_scheduler(cfg, optimizer)

    @classmethod
    def test(cls, cfg, model: torch.nn.Module) -> Dict[str, Any]:
        """Evaluate ``model``; returns ``{dataset: {metric: value}}`` (empty: no evaluation)."""
        return OrderedDict()

    # ------------------------------------------------------------------ engine plumbing
    @property
    def model(self) -> torch.nn.Module:
        return self._trainer.model

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._trainer.optimizer

    def build_writers(self) -> List[EventWriter]:
        """Console (with ETA), ``OUTPUT_DIR/metrics.json`` and TensorBoard event files."""
        return [
            CommonMetricPrinter(self.max_iter),
            JSONWriter(f"{self.cfg.OUTPUT_DIR}/metrics.json"),
            TensorboardXWriter(self.cfg.OUTPUT_DIR),
        ]

    def build_hooks(self) -> List[hooks.HookBase]:
        """Timer, LR scheduler, checkpoints (main process), evaluation, then the writers."""
        cfg = self.cfg
        self._install_reliability()  # verified checkpoints, MODEL.WEIGHTS_REINIT, deterministic resume
        ret: List[Optional[hooks.HookBase]] = [hooks.IterationTimer(), hooks.LRScheduler()]
        if comm.is_main_process():
            ret.append(hooks.PeriodicCheckpointer(self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD))

        def test_and_save_results() -> Dict[str, Any]:
            self._last_eval_results = self.test(self.cfg, self.model)
            return self._last_eval_results

        # after the checkpointer: a failing evaluation leaves a checkpoint to debug with
        ret.append(hooks.EvalHook(cfg.TEST.EVAL_PERIOD, test_and_save_results))
        if comm.is_main_process():
            ret.append(hooks.PeriodicWriter(self.build_writers(), period=self.writer_period))
        return _rng_neutral_eval([h for h in ret if h is not None])

    def resume_or_load(self, resume: bool = True) -> None:
        """Resume from ``OUTPUT_DIR/last_checkpoint`` (model, optimizer, scheduler, iteration) when
        ``resume`` and a checkpoint exists; otherwise load ``MODEL.WEIGHTS`` (if set) and start at 0."""
        self.checkpointer.resume_or_load(self.cfg.MODEL.WEIGHTS, resume=resume)
        if resume and self.checkpointer.has_checkpoint():
            # the checkpoint stores the iteration that just finished
            self.start_iter = self.iter + 1

    def train(self) -> Optional[Dict[str, Any]]:
        """Run ``start_iter .. max_iter``; returns the last evaluation results (or ``None``)."""
        super().train(self.start_iter, self.max_iter)
        return self._last_eval_results

    def run_step(self) -> None:
        self._trainer.iter = self.iter
        if self.amp_enabled:
            self._run_amp_step()
        else:
            self._trainer.run_step()

    # ------------------------------------------------------------------ mixed precision (SOLVER.AMP.ENABLED)
    def _setup_amp(self, cfg) -> None:
        """Mixed precision as the official RDCD / SSCD runs (Lightning ``precision=16``): float16 autocast
        with
        a gradient scaler on CUDA, bfloat16 autocast on the CPU (no scaler needed: bfloat16 has float32's
        exponent range). detectron2's own ``AMPTrainer`` is CUDA-only."""
        amp = getattr(getattr(cfg.SOLVER, "AMP", None), "ENABLED", False)
        self.amp_enabled = bool(amp)
        device = str(getattr(cfg.MODEL, "DEVICE", "cpu"))
        self.amp_device = "cuda" if device.startswith("cuda") else "cpu"
        self.amp_dtype = torch.float16 if self.amp_device == "cuda" else torch.bfloat16
        use_scaler = self.amp_enabled and self.amp_device == "cuda"
        self.grad_scaler = torch.amp.GradScaler(self.amp_device, enabled=use_scaler)

    def autocast(self):
        """The autocast context of the forward pass (a no-op context when AMP is off)."""
        if not self.amp_enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.amp_device, dtype=self.amp_dtype)

    def _run_amp_step(self) -> None:
        """detectron2's ``SimpleTrainer.run_step`` with the forward under :meth:`autocast` and the backward /
        step through the gradient scaler."""
        trainer = self._trainer
        assert trainer.model.training, "[GenericTrainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(trainer._data_loader_iter)
        data_time = time.perf_counter() - start
        with self.autocast():
            loss_dict = trainer.model(data)
            if isinstance(loss_dict, torch.Tensor):
                loss_dict = {"total_loss": loss_dict}
            losses = sum(loss_dict.values())
        trainer.optimizer.zero_grad()
        self.grad_scaler.scale(losses.float()).backward()
        trainer._write_metrics(loss_dict, data_time)
        self.grad_scaler.step(trainer.optimizer)
        self.grad_scaler.update()

    # state_dict / load_state_dict (iteration, hooks, and the inner trainer's optimizer) come from
    # AtomicCheckpointing

