"""``DASTrainer``: the shared :class:`shared.engine.trainer.GenericTrainer` with the DAS model, the P×K
loader, Adam with the margin-β parameter group, retrieval evaluation and a best/last evaluation record."""
from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

import torch
from detectron2.engine import hooks
from detectron2.modeling import build_model
from detectron2.utils import comm

from das.datasets import build_train_loader, num_train_classes
from das.evaluation import check_test_sets, evaluate_retrieval
from das.predictor import write_das_run_info
from shared.atomic_io import atomic_open
from shared.engine import GenericTrainer
from shared.registry import get_or_raise

logger = logging.getLogger(__name__)

#: SOLVER.OPTIMIZER -> builder(param groups, cfg); the official scripts use Adam (scripts/standard.py)
OPTIMIZERS = {
    "Adam": lambda groups, cfg: torch.optim.Adam(groups),
    "SGD": lambda groups, cfg: torch.optim.SGD(groups, momentum=cfg.SOLVER.MOMENTUM),
}


def primary_metric_key(cfg) -> str:
    """The key used to pick the best evaluation: ``"<first test set>/R@<first K>"`` ("" without test sets)."""
    if not cfg.DATASETS.TEST:
        return ""
    return f"{cfg.DATASETS.TEST[0]}/R@{cfg.TEST.RETRIEVAL.RECALL_KS[0]}"


class EvalHistory(hooks.HookBase):
    """Records every evaluation (iteration, results), and writes ``OUTPUT_DIR/eval_history.json`` with the
    last and the best (by :func:`primary_metric_key`) ones: the "best-epoch and last-epoch" numbers. Only the
    main process records (the others get empty results from the gathered evaluation)."""

    def __init__(self, key: str, output_dir: str):
        self.key = key
        self.output_dir = output_dir
        self.history: List[Tuple[int, Dict[str, Dict[str, float]]]] = []
        self._seen: Optional[Any] = None

    def _record(self, iteration: int) -> None:
        """Store the trainer's latest evaluation if it is new; ``iteration`` = iterations done when it ran."""
        results = self.trainer._last_eval_results
        if not results or results is self._seen:
            return
        self._seen = results
        self.history.append((iteration, results))
        if comm.is_main_process() and self.output_dir:
            os.makedirs(self.output_dir, exist_ok=True)
            with atomic_open(os.path.join(self.output_dir, "eval_history.json"), "w") as f:
                json.dump({"metric": self.key, "best": self.best(), "last": self.last(),
                           "history": [{"iter": i, "results": r} for i, r in self.history]}, f, indent=1)

    def after_step(self) -> None:
        self._record(self.trainer.iter + 1)

    def after_train(self) -> None:
        self._record(self.trainer.iter)  # detectron2 sets iter = max_iter before after_train

    def _value(self, results: Dict[str, Dict[str, float]]) -> float:
        name, metric = self.key.split("/", 1)
        return results[name][metric]

    def best(self) -> Optional[Dict[str, Any]]:
        if not self.history or not self.key:
            return None
        it, res = max(self.history, key=lambda h: self._value(h[1]))
        return {"iter": it, "results": res}

    def last(self) -> Optional[Dict[str, Any]]:
        return {"iter": self.history[-1][0], "results": self.history[-1][1]} if self.history else None


def log_split_counts(cfg) -> None:
    """One log line per dataset of ``DATASETS.TRAIN`` / ``TEST`` / ``TEST_GALLERY``: images and classes."""
    from detectron2.data import DatasetCatalog

    for role, names in (("train", cfg.DATASETS.TRAIN), ("test", cfg.DATASETS.TEST),
                        ("gallery", cfg.DATASETS.TEST_GALLERY)):
        for name in names:
            records = DatasetCatalog.get(name)
            classes = len({r["label"] for r in records})
            logger.info("%s set %s: %d images of %d classes", role, name, len(records), classes)


class DASTrainer(GenericTrainer):
    """Trainer of the DAS project (``MODEL.META_ARCHITECTURE: DASEmbeddingModel``)."""

    def __init__(self, cfg):
        if comm.is_main_process() and cfg.OUTPUT_DIR:
            os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)  # the json / tensorboard writers need it
        log_split_counts(cfg)
        check_test_sets(cfg)  # TEST.RETRIEVAL.RECALL_KS against each test set, before training
        super().__init__(cfg)
        if comm.is_main_process():
            num_classes = cfg.MODEL.DAS.NUM_CLASSES
            if cfg.MODEL.DAS.ENABLED and num_classes <= 0:
                num_classes = num_train_classes(cfg)
            write_das_run_info(cfg, num_classes if cfg.MODEL.DAS.ENABLED else 0)

    @classmethod
    def build_model(cls, cfg) -> torch.nn.Module:
        """The registered meta-architecture; ``MODEL.DAS.NUM_CLASSES = 0`` is filled from
        ``DATASETS.TRAIN``."""
        if cfg.MODEL.DAS.ENABLED and cfg.MODEL.DAS.NUM_CLASSES <= 0:
            cfg = cfg.clone()
            cfg.defrost()
            cfg.MODEL.DAS.NUM_CLASSES = num_train_classes(cfg)
        model = build_model(cfg)
        logger.info("Model:\n%s", model)
        return model

    @classmethod
    def build_train_loader(cls, cfg):
        return build_train_loader(cfg)

    @classmethod
    def build_optimizer(cls, cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
        """``SOLVER.OPTIMIZER`` over two groups: the network (BASE_LR, WEIGHT_DECAY) and the loss's own
        parameters (the learnable margin β: ``MODEL.LOSS.BETA_LR``, no weight decay)."""
        build = get_or_raise(OPTIMIZERS, cfg.SOLVER.OPTIMIZER, "SOLVER.OPTIMIZER")
        loss_params = [p for p in model.criterion.parameters() if p.requires_grad]
        loss_ids = {id(p) for p in loss_params}
        net_params = [p for p in model.parameters() if p.requires_grad and id(p) not in loss_ids]
        groups = [{"params": net_params, "lr": cfg.SOLVER.BASE_LR, "weight_decay": cfg.SOLVER.WEIGHT_DECAY}]
        if loss_params:
            groups.append({"params": loss_params, "lr": cfg.MODEL.LOSS.BETA_LR, "weight_decay": 0.0})
        return build(groups, cfg)

    @classmethod
    def test(cls, cfg, model: torch.nn.Module) -> "OrderedDict[str, Dict[str, float]]":
        return evaluate_retrieval(cfg, model, output_dir=cfg.OUTPUT_DIR)

    def build_hooks(self) -> List[hooks.HookBase]:
        ret = super().build_hooks()
        self.eval_history = EvalHistory(primary_metric_key(self.cfg), self.cfg.OUTPUT_DIR)
        position = next(i for i, h in enumerate(ret) if isinstance(h, hooks.EvalHook)) + 1
        ret.insert(position, self.eval_history)
        return ret
