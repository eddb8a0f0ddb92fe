"""The IIF box predictor: detectron2's ``FastRCNNOutputLayers`` with IIF-scaled class logits.

``forward`` returns ``(w * z, deltas)`` where ``z`` are the K+1 class logits (bias included) and ``w``
the IIF weights (background last). detectron2 v0.6's ``losses()`` applies softmax cross-entropy and
``predict_probs()`` a softmax to whatever ``forward`` returns, so the same scaling acts in training
and at inference, as in the official code.
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Dict, Optional

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
from torch import nn

from iif.weights import (
    ClassCounts,
    counts_from_dataset_dicts,
    counts_from_lvis_json,
    iif_weight_vector,
    weights_from_csv,
)
from shared.registry import get_or_raise

__all__ = ["CLS_INITS", "COUNT_SOURCES", "IIFOutputLayers", "NormedLinear", "iif_weights_from_cfg"]

logger = logging.getLogger(__name__)


class NormedLinear(nn.Linear):
    """Cosine classifier of the official IIF configs (``NormedLinear``, IIF repository,
    instance_segmentation/mmdet/models/utils/normed_predictor.py)::

        z_k = T * <x / (|x| + eps), W_k / (|W_k| + eps)> + b_k

    with temperature ``T`` (``scale``; 8 in the official IIF runs, 20 in their softmax baselines). It
    initialises itself as the official layer does: weights normal(std 0.01), bias 0.
    """

    def __init__(self, in_features: int, out_features: int, scale: float = 8.0, eps: float = 1e-6):
        super().__init__(in_features, out_features)
        self.scale = float(scale)
        self.eps = eps
        nn.init.normal_(self.weight, std=0.01)
        nn.init.constant_(self.bias, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x / (x.norm(dim=1, keepdim=True) + self.eps) * self.scale
        weight = self.weight / (self.weight.norm(dim=1, keepdim=True) + self.eps)
        return F.linear(x, weight, self.bias)


def _init_detectron2_default(linear: nn.Linear) -> None:
    """normal(std 0.01), bias 0 (detectron2's FastRCNNOutputLayers; also mmdet's BBoxHead and the official
    NormedLinear)."""
    nn.init.normal_(linear.weight, std=0.01)
    nn.init.constant_(linear.bias, 0.0)


def _init_iif(linear: nn.Linear) -> None:
    """constant 0.001, bias 0 (official IIF configs, e.g. configs/activations/iif/iif_r50_4x4_1x.py)."""
    nn.init.constant_(linear.weight, 0.001)
    nn.init.constant_(linear.bias, 0.0)


def _init_softmax_baseline(linear: nn.Linear) -> None:
    """constant 0.001, bias -6.5 (official softmax baseline, configs/activations/r50_4x4_1x_softmax.py)."""
    nn.init.constant_(linear.weight, 0.001)
    nn.init.constant_(linear.bias, -6.5)


#: MODEL.ROI_BOX_HEAD.CLS_INIT -> fn(linear) initialising the box classifier ("auto" is resolved first)
CLS_INITS: Dict[str, Callable[[nn.Linear], None]] = {
    "default": _init_detectron2_default,
    "iif": _init_iif,
    "softmax_baseline": _init_softmax_baseline,
}
#: MODEL.ROI_BOX_HEAD.CLS_PREDICTOR -> class of the box classifier
CLS_PREDICTORS: Dict[str, type] = {"linear": nn.Linear, "cosine": NormedLinear}


def resolve_cls_init(cls_init: str, iif_enabled: bool, cls_predictor: str) -> str:
    """``"auto"``: ``"iif"`` (constant 0.001) for a linear IIF classifier, as the official IIF configs;
    ``"default"`` (normal std 0.01) otherwise -- the official cosine runs set no init, so their
    NormedLinear keeps its own normal(std 0.01)."""
    if cls_init != "auto":
        return cls_init
    return "iif" if iif_enabled and cls_predictor == "linear" else "default"


def _training_dataset_names(cfg) -> list[str]:
    names = list(cfg.MODEL.ROI_BOX_HEAD.IIF.DATASETS) or list(cfg.DATASETS.TRAIN)
    if not names:
        raise ValueError("IIF needs a training dataset for its counts: set DATASETS.TRAIN or "
                         "MODEL.ROI_BOX_HEAD.IIF.DATASETS")
    return names


def _weights_from_counts(cfg, counts) -> torch.Tensor:
    iif_cfg = cfg.MODEL.ROI_BOX_HEAD.IIF
    return iif_weight_vector(counts, iif_cfg.VARIANT, norm_p=iif_cfg.NORM_P, bg_weight=iif_cfg.BG_WEIGHT)


def _sum_counts(parts):
    """Merge the counts of several training datasets (counts and totals add up)."""
    first = parts[0]
    if len(parts) == 1:
        return first
    if len({p.num_classes for p in parts}) != 1:
        raise ValueError("IIF training datasets have different class counts: "
                         f"{[p.num_classes for p in parts]}")
    has_inst = all(p.instance_counts is not None for p in parts)
    return ClassCounts(
        sum(p.image_counts for p in parts),
        sum(p.num_images for p in parts),
        sum(p.instance_counts for p in parts) if has_inst else None,
        sum(p.num_instances for p in parts) if has_inst else None,
        source=" + ".join(p.source for p in parts),
    )


def _weights_from_lvis_json(cfg, dataset_names: list[str]) -> torch.Tensor:
    parts = []
    for name in dataset_names:
        json_file = MetadataCatalog.get(name).get("json_file", None)
        if json_file is None:
            raise ValueError(f"IIF COUNT_SOURCE 'json': dataset {name!r} has no `json_file` in its metadata; "
                             "use COUNT_SOURCE 'dicts' to count from the dataset dicts")
        parts.append(counts_from_lvis_json(json_file))
    return _weights_from_counts(cfg, _sum_counts(parts))


def _weights_from_dataset_dicts(cfg, dataset_names: list[str]) -> torch.Tensor:
    num_classes = cfg.MODEL.ROI_HEADS.NUM_CLASSES
    parts = [counts_from_dataset_dicts(DatasetCatalog.get(n), num_classes, source=n) for n in dataset_names]
    return _weights_from_counts(cfg, _sum_counts(parts))


def _weights_from_csv_file(cfg, dataset_names: list[str]) -> torch.Tensor:
    iif_cfg = cfg.MODEL.ROI_BOX_HEAD.IIF
    if not iif_cfg.CSV_PATH:
        raise ValueError("IIF COUNT_SOURCE 'csv' needs MODEL.ROI_BOX_HEAD.IIF.CSV_PATH")
    return weights_from_csv(iif_cfg.CSV_PATH, iif_cfg.VARIANT, cfg.MODEL.ROI_HEADS.NUM_CLASSES,
                            iif_cfg.BG_WEIGHT)


#: name of the weight buffer in a trained model's state dict (``roi_heads.box_predictor.iif_weights``)
CHECKPOINT_WEIGHTS_SUFFIX = "box_predictor.iif_weights"


def _weights_from_checkpoint(cfg, dataset_names: list[str]) -> torch.Tensor:
    """The ``iif_weights`` buffer saved in ``MODEL.WEIGHTS`` (a trained IIF model): no dataset needed, which
    is how a trained run is loaded for prediction (``shared.engine.load_run``)."""
    path = cfg.MODEL.WEIGHTS
    if not path or not os.path.isfile(path):
        raise ValueError(f"IIF COUNT_SOURCE 'checkpoint' needs MODEL.WEIGHTS to be a trained model file, got "
                         f"{path!r}")
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    state = state.get("model", state) if isinstance(state, dict) else {}
    found = [k for k in state if k.endswith(CHECKPOINT_WEIGHTS_SUFFIX)]
    if not found:
        raise ValueError(f"IIF COUNT_SOURCE 'checkpoint': {path} holds no '*.{CHECKPOINT_WEIGHTS_SUFFIX}' "
                         "tensor (a model trained without IIF?)")
    return state[found[0]].detach().to(torch.float32).clone()


#: MODEL.ROI_BOX_HEAD.IIF.COUNT_SOURCE -> fn(cfg, dataset_names) -> (K+1,) IIF weight tensor
COUNT_SOURCES: Dict[str, Callable] = {
    "json": _weights_from_lvis_json,
    "dicts": _weights_from_dataset_dicts,
    "csv": _weights_from_csv_file,
    "checkpoint": _weights_from_checkpoint,
}


def iif_weights_from_cfg(cfg) -> torch.Tensor:
    """The (K+1,) CPU weight vector for ``cfg`` (IIF.COUNT_SOURCE selects how it is obtained)."""
    source = get_or_raise(COUNT_SOURCES, cfg.MODEL.ROI_BOX_HEAD.IIF.COUNT_SOURCE,
                          "MODEL.ROI_BOX_HEAD.IIF.COUNT_SOURCE")
    names = [] if cfg.MODEL.ROI_BOX_HEAD.IIF.COUNT_SOURCE == "checkpoint" else _training_dataset_names(cfg)
    return source(cfg, names)


def _check_softmax_only(cfg) -> None:
    """IIF scales softmax logits; sigmoid CE and the federated loss are refused (not silently ignored)."""
    box_head = cfg.MODEL.ROI_BOX_HEAD
    for key in ("USE_SIGMOID_CE", "USE_FED_LOSS"):
        if box_head.get(key, False):
            raise ValueError(
                f"MODEL.ROI_BOX_HEAD.{key}=True is not supported by IIF: the IIF weights scale the logits "
                "of a softmax cross-entropy classifier (as the official code, which asserts non-sigmoid mode)"
            )


class IIFOutputLayers(FastRCNNOutputLayers):
    """``FastRCNNOutputLayers`` whose class logits are multiplied by a (K+1,) weight buffer ``iif_weights``.

    With ``iif_weights=None`` it is the plain softmax predictor (baseline), with the same classifier
    options (linear/cosine, initialisation). The buffer is built on the CPU and follows ``.to(device)``.
    """

    @configurable
    def __init__(
        self,
        input_shape,
        *,
        iif_weights: Optional[torch.Tensor] = None,
        cls_predictor: str = "linear",
        cosine_scale: float = 8.0,
        cls_init: str = "default",
        **kwargs,
    ):
        super().__init__(input_shape, **kwargs)
        in_features = self.cls_score.in_features
        predictor_cls = get_or_raise(CLS_PREDICTORS, cls_predictor, "MODEL.ROI_BOX_HEAD.CLS_PREDICTOR")
        if predictor_cls is NormedLinear:
            self.cls_score = NormedLinear(in_features, self.num_classes + 1, scale=cosine_scale)
        get_or_raise(CLS_INITS, cls_init, "MODEL.ROI_BOX_HEAD.CLS_INIT")(self.cls_score)
        if iif_weights is not None:
            iif_weights = torch.as_tensor(iif_weights, dtype=torch.float32).reshape(-1)
            if iif_weights.numel() != self.num_classes + 1:
                raise ValueError(
                    f"IIF weights have {iif_weights.numel()} entries but the model has NUM_CLASSES="
                    f"{self.num_classes} (+1 background = {self.num_classes + 1}); the counts come from a "
                    "dataset with a different number of classes"
                )
            if not torch.isfinite(iif_weights).all():
                raise ValueError("IIF weights contain NaN/inf")
            self.register_buffer("iif_weights", iif_weights.clone())
        else:
            self.iif_weights = None

    @classmethod
    def from_config(cls, cfg, input_shape):
        _check_softmax_only(cfg)
        ret = super().from_config(cfg, input_shape)
        box_head = cfg.MODEL.ROI_BOX_HEAD
        enabled = box_head.IIF.ENABLED
        cls_init = resolve_cls_init(box_head.CLS_INIT, enabled, box_head.CLS_PREDICTOR)
        weights = iif_weights_from_cfg(cfg) if enabled else None
        if weights is not None:
            logger.info(
                "IIF variant %s: %d foreground weights in [%.4f, %.4f], background %.3f",
                box_head.IIF.VARIANT, weights.numel() - 1, weights[:-1].min(), weights[:-1].max(),
                weights[-1],
            )
        ret.update(
            iif_weights=weights,
            cls_predictor=box_head.CLS_PREDICTOR,
            cosine_scale=box_head.COSINE_SCALE,
            cls_init=cls_init,
        )
        return ret

    def forward(self, x: torch.Tensor):
        scores, proposal_deltas = super().forward(x)
        if self.iif_weights is not None:
            scores = scores * self.iif_weights
        return scores, proposal_deltas
