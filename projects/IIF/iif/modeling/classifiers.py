"""Classifier pieces: a timm backbone (pretrained=False) and ``IIFLogitScaler``."""
from __future__ import annotations

import timm
import torch
from torch import nn

__all__ = ["IIFLogitScaler", "build_classifier", "classifier_layer"]

SCALER_MODES = ("train_test", "posthoc", "off")


class IIFLogitScaler(nn.Module):
    """Multiply logits by per-class IIF weights ``w`` (shape (K,)).

    ``mode``: ``"train_test"`` scales always (IIF-CE training and IIF inference, used by the decoupled
    stage); ``"posthoc"`` scales only in eval mode (train with plain CE, apply IIF at test time);
    ``"off"`` never scales.
    """

    def __init__(self, weights: torch.Tensor, mode: str = "posthoc"):
        super().__init__()
        if mode not in SCALER_MODES:
            raise KeyError(f"unknown IIFLogitScaler mode {mode!r}; valid: {SCALER_MODES}")
        weights = torch.as_tensor(weights, dtype=torch.float32).reshape(-1)
        if not torch.isfinite(weights).all():
            raise ValueError("IIF weights contain NaN/inf")
        self.register_buffer("weights", weights)
        self.mode = mode

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.shape[-1] != self.weights.numel():
            raise ValueError(f"logits have {logits.shape[-1]} classes but the IIF weights {self.weights.numel()}")
        active = self.mode == "train_test" or (self.mode == "posthoc" and not self.training)
        return logits * self.weights if active else logits

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, num_classes={self.weights.numel()}"


def build_classifier(backbone: str, num_classes: int) -> nn.Module:
    """A timm model with a ``num_classes`` head, randomly initialised (``pretrained=False``)."""
    return timm.create_model(backbone, pretrained=False, num_classes=num_classes)


def classifier_layer(model: nn.Module) -> nn.Linear:
    """The final linear layer of a timm model (``get_classifier``)."""
    layer = model.get_classifier()
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"expected a linear classifier, got {type(layer).__name__}")
    return layer
