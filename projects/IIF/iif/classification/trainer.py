"""``IIFClsTrainer``: the long-tailed classification protocol of the IIF paper on
:class:`shared.engine.GenericTrainer` (iteration loop, checkpoints, writers, evaluation hook, DDP).

* ``IIF.MODE "posthoc"`` -- representation learning with softmax CE; the evaluation reports top-1
  (overall / many / medium / few) of the plain logits and of the IIF-scaled logits (post-hoc IIF).
* ``IIF.MODE "train_test"`` with ``MODEL.CLS.TRAINABLE "classifier"`` and ``MODEL.WEIGHTS`` = the first
  stage's ``model_final.pth`` -- the decoupled stage: only the classifier learns, with IIF-scaled CE, and
  the evaluation scales the logits the same way.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Dict

import torch
from detectron2.data.samplers import InferenceSampler, TrainingSampler
from detectron2.utils import comm
from torch.utils.data import DataLoader

from iif.classification.datasets import build_cls_datasets, build_transforms, class_counts, shot_groups
from iif.modeling.classifiers import (
    IIFLogitScaler,
    LongTailClassifier,
    build_network,
    classifier_layer,
    last_block,
    load_pretrained,
)
from iif.weights import compute_iif_weights
from shared.engine import GenericTrainer
from shared.weights import resolve as resolve_weights

__all__ = ["IIFClsTrainer", "evaluate_logits", "iif_weights_for_counts", "set_trainable"]

logger = logging.getLogger(__name__)


def iif_weights_for_counts(counts, variant: str, norm_p: float = 0.0) -> torch.Tensor:
    """Per-class weights ``w_c = f_variant(n_c, N)`` with ``N = sum_c n_c`` (official classification
    ``IIFLoss``), divided by their p-norm when ``norm_p > 0``."""
    weights = torch.tensor(compute_iif_weights(counts, float(sum(counts)), variant), dtype=torch.float32)
    if norm_p > 0:
        weights = weights / torch.linalg.vector_norm(weights, norm_p)
    return weights


def evaluate_logits(correct: torch.Tensor, count: torch.Tensor,
                    groups: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """Top-1 (%) overall and per shot group: the mean of the per-class accuracies ``correct_c / count_c``
    of the group's classes present in the test set (equal to the sample mean on a balanced test set)."""
    per_class = torch.where(count > 0, correct / count.clamp(min=1), torch.nan)
    results = {"top1": 100.0 * correct.sum().item() / max(count.sum().item(), 1)}
    for name, mask in groups.items():
        values = per_class[mask & (count > 0)]
        results[name] = 100.0 * values.mean().item() if values.numel() else float("nan")
    return results


def set_trainable(net: torch.nn.Module, trainable: str) -> None:
    """Freeze every parameter but: ``"classifier"`` -- the classifier's ``weight`` and ``bias`` (official
    ``select_training_param``, classification/train.py; a learnable cosine scale stays frozen there too);
    ``"last_block"`` -- those and the final residual block (official ``finetune_places``)."""
    if trainable == "all":
        return
    for p in net.parameters():
        p.requires_grad_(False)
    fc = classifier_layer(net)
    for name in ("weight", "bias"):
        if isinstance(getattr(fc, name, None), torch.nn.Parameter):
            getattr(fc, name).requires_grad_(True)
    if trainable == "last_block":
        for p in last_block(net).parameters():
            p.requires_grad_(True)


class IIFClsTrainer(GenericTrainer):
    """Long-tailed classification (see the module docstring); the model is a :class:`LongTailClassifier`."""

    @classmethod
    def build_model(cls, cfg) -> LongTailClassifier:
        train, _ = build_cls_datasets(cfg)
        counts = class_counts(train.targets, cfg.DATA.NUM_CLASSES)
        weights = iif_weights_for_counts(counts, cfg.IIF.VARIANT, cfg.IIF.NORM_P)
        net = build_network(cfg.MODEL.CLS.BACKBONE, cfg.DATA.NUM_CLASSES, cfg.MODEL.CLS.HEAD)
        if cfg.MODEL.CLS.PRETRAINED:
            load_pretrained(net, resolve_weights(cfg.MODEL.CLS.PRETRAINED))
        set_trainable(net, cfg.MODEL.CLS.TRAINABLE)
        logger.info("train images per class %s; IIF %s weights in [%.3f, %.3f]", counts.tolist(),
                    cfg.IIF.VARIANT, weights.min().item(), weights.max().item())
        model = LongTailClassifier(net, weights, counts, iif_mode=cfg.IIF.MODE,
                                   mixup_alpha=cfg.SOLVER.MIXUP_ALPHA,
                                   seed=cfg.SEED if cfg.SEED >= 0 else None)
        return model.to(cfg.MODEL.DEVICE)

    @classmethod
    def build_train_loader(cls, cfg):
        train, _ = build_cls_datasets(cfg, build_transforms(cfg, True), build_transforms(cfg, False))
        batch = cfg.SOLVER.IMS_PER_BATCH // comm.get_world_size()
        sampler = TrainingSampler(len(train), shuffle=True, seed=cfg.SEED if cfg.SEED >= 0 else None)
        loader = DataLoader(train, batch_size=batch, sampler=sampler, num_workers=cfg.DATA.NUM_WORKERS,
                            drop_last=True)
        return iter(loader)

    @classmethod
    def test(cls, cfg, model) -> Dict[str, Dict[str, float]]:
        module = model.module if hasattr(model, "module") else model
        _, test_set = build_cls_datasets(cfg, None, build_transforms(cfg, False))
        loader = DataLoader(test_set, batch_size=max(cfg.SOLVER.IMS_PER_BATCH // comm.get_world_size(), 1),
                            sampler=InferenceSampler(len(test_set)), num_workers=cfg.DATA.NUM_WORKERS)
        counts = module.class_counts.cpu()
        groups = shot_groups(counts.numpy(), cfg.DATA.MANY_SHOT, cfg.DATA.FEW_SHOT)
        posthoc = IIFLogitScaler(module.scaler.weights.cpu(), mode="posthoc").eval()
        names = {"posthoc": ("softmax", f"posthoc_iif_{cfg.IIF.VARIANT}"), "train_test": (None, "iif")}
        plain_name, iif_name = names[cfg.IIF.MODE]
        k = cfg.DATA.NUM_CLASSES
        stats = {name: [torch.zeros(k), torch.zeros(k)] for name in (plain_name, iif_name) if name}
        was_training = module.training
        module.eval()
        with torch.no_grad():
            for images, labels in loader:
                logits = module((images, labels)).float().cpu()
                for name, scaled in ((plain_name, logits), (iif_name, posthoc(logits))):
                    if name is None:
                        continue
                    pred = scaled.argmax(1)
                    stats[name][0] += torch.bincount(labels[pred == labels], minlength=k).float()
                    stats[name][1] += torch.bincount(labels, minlength=k).float()
        module.train(was_training)
        results = OrderedDict()
        for name, (correct, count) in stats.items():
            if comm.get_world_size() > 1:
                gathered = comm.all_gather((correct, count))
                correct = sum(c for c, _ in gathered)
                count = sum(n for _, n in gathered)
            results[name] = evaluate_logits(correct, count, groups)
        if comm.is_main_process():
            for name, r in results.items():
                logger.info("%s: top-1 %.2f | many %.2f | medium %.2f | few %.2f", name, r["top1"], r["many"],
                            r["medium"], r["few"])
        return results
