"""The RDCD / SSCD trainer: :class:`shared.engine.trainer.GenericTrainer` with this project's pieces."""

from __future__ import annotations

import logging

import torch
from detectron2.utils import comm

from rdcd.datasets import build_train_loader
from rdcd.evaluation import evaluate_on_test_sets
from rdcd.modeling import build_model
from rdcd.modeling.networks import load_weights_file
from rdcd.modeling.student import is_official_rdcd_state, official_rdcd_to_ours
from rdcd.predictor import write_rdcd_run_info
from rdcd.solver import build_optimizer
from rdcd.transforms import build_train_transform
from shared.engine import AtomicDetectionCheckpointer, GenericTrainer

logger = logging.getLogger(__name__)


#: model tensors an official RDCD ``.ckpt`` does not hold
OFFICIAL_CKPT_REINIT = r"^relational_kd\."
#: training-only state: the MoCo key queue and the relational-distillation queues, whose sizes
#: (``MODEL.RDCD.MOCO.QUEUE``, ``MODEL.RDCD.LOSS.KD_QUEUE``, ``KD_MODE``) do not change a descriptor
TRAINING_ONLY_STATE = (r"^key_queue\.", r"^relational_kd\.")


class RDCDCheckpointer(AtomicDetectionCheckpointer):
    """The toolkit's checkpointer that also reads the official RDCD Lightning checkpoints
    (``epoch=99-step=390599.ckpt``, through :func:`rdcd.modeling.networks.load_weights_file`, i.e.
    ``torch.load(weights_only=True)`` with Lightning's ``argparse.Namespace`` allowed): ``MODEL.WEIGHTS`` may
    name one directly. Every other file goes through the atomic checkpointer's safe reader (digest check,
    ``weights_only`` loading, restricted ``.pkl`` unpickler)."""

    def _load_file(self, filename: str):
        if not filename.endswith(".ckpt"):
            return super()._load_file(filename)
        loaded = load_weights_file(filename)
        state = loaded.get("state_dict") if isinstance(loaded, dict) else None
        if isinstance(state, dict) and is_official_rdcd_state(state):
            logger.info("%s is an official RDCD checkpoint: renamed to this model's keys", filename)
            # the official release carries no relational-distillation queue (its module was never published):
            # that training-only state starts empty instead of making a strict load fail
            self.reinit_patterns = tuple(self.reinit_patterns) + (OFFICIAL_CKPT_REINIT,)
            return {"model": official_rdcd_to_ours(state), "matching_heuristics": False}
        if isinstance(loaded, dict) and "model" not in loaded:
            loaded = {"model": loaded.get("state_dict", loaded)}
        return loaded


class RDCDTrainer(GenericTrainer):
    """Trains ``MODEL.META_ARCHITECTURE`` (RDCD distillation or SSCD), evaluates on ``DATASETS.TEST``."""

    checkpointer_cls = RDCDCheckpointer

    def __init__(self, cfg):
        super().__init__(cfg)
        write_rdcd_run_info(cfg)  # main process only

    @classmethod
    def build_checkpointer(cls, model: torch.nn.Module, cfg, *, strict=True, **checkpointables):
        """``strict=True`` is loading for evaluation (``--eval-only``, a run folder): the queues are then
        not required, so the config need not repeat the training-time queue sizes."""
        checkpointer = super().build_checkpointer(model, cfg, strict=strict, **checkpointables)
        if strict is True:
            checkpointer.reinit_patterns = tuple(checkpointer.reinit_patterns) + TRAINING_ONLY_STATE
        return checkpointer

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
