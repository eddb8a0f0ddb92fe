"""Long-tailed image classification with IIF (post-hoc and decoupled), on shared.engine.GenericTrainer."""
from iif.classification.config import add_iif_cls_config
from iif.classification.datasets import (
    Cutout,
    TextListDataset,
    build_cls_datasets,
    build_transforms,
    class_counts,
    longtail_indices,
    prepare_cls_cfg,
    shot_groups,
)
from iif.classification.trainer import IIFClsTrainer, evaluate_logits, iif_weights_for_counts

__all__ = [
    "Cutout",
    "IIFClsTrainer",
    "TextListDataset",
    "add_iif_cls_config",
    "build_cls_datasets",
    "build_transforms",
    "class_counts",
    "evaluate_logits",
    "iif_weights_for_counts",
    "longtail_indices",
    "prepare_cls_cfg",
    "shot_groups",
]
