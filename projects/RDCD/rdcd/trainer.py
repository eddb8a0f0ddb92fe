"""The RDCD / SSCD trainer: :class:`shared.engine.trainer.GenericTrainer` with this project's pieces."""
from __future__ import annotations

import logging

import torch
from detectron2.utils import comm

from rdcd.datasets import build_train_loader
from rdcd.evaluation import evaluate_on_test_sets
from rdcd.modeling import build_model
from rdcd.solver import build_optimizer
from rdcd.transforms import build_train_transform
from shared.engine.trainer import GenericTrainer

logger = logging.getLogger(__name__)


class RDCDTrainer(GenericTrainer):
    """Trains the ``MODEL.META_ARCHITECTURE`` (RDCD distillation or SSCD) and evaluates on ``DATASETS.TEST``."""

    @classmethod
    def build_model(cls, cfg) -> torch.nn.Module:
        model = build_model(cfg)
        if cfg.MODEL.SYNC_BN and comm.get_world_size() > 1 and next(model.parameters()).is_cuda:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        logger.info("%s with %.2fM trainable parameters", cfg.MODEL.META_ARCHITECTURE, trainable / 1e6)
        return model

    @classmethod
    def build_train_loader(cls, cfg):
        return build_train_loader(cfg, build_train_transform(cfg))

    @classmethod
    def build_optimizer(cls, cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
        return build_optimizer(cfg, model)

    @classmethod
    def test(cls, cfg, model: torch.nn.Module):
        return evaluate_on_test_sets(cfg, model)
