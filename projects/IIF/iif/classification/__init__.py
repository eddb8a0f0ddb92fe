"""Long-tailed image classification with IIF: post-hoc logit scaling and decoupled classifier re-training."""
from iif.classification.config import get_cls_cfg
from iif.classification.datasets import TextListDataset, class_counts, longtail_indices, shot_groups
from iif.classification.engine import decoupled_retrain, evaluate, train_one_epoch
from iif.modeling.classifiers import IIFLogitScaler, build_classifier, classifier_layer

__all__ = [
    "IIFLogitScaler",
    "TextListDataset",
    "build_classifier",
    "class_counts",
    "classifier_layer",
    "decoupled_retrain",
    "evaluate",
    "get_cls_cfg",
    "longtail_indices",
    "shot_groups",
    "train_one_epoch",
]
