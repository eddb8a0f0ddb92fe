"""Training / evaluation loops of the long-tailed classification protocol."""
from __future__ import annotations

import logging
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from iif.modeling.classifiers import IIFLogitScaler, classifier_layer

__all__ = ["decoupled_retrain", "evaluate", "train_one_epoch"]

logger = logging.getLogger(__name__)


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, device: str,
                    scaler: Optional[IIFLogitScaler] = None, scheduler=None) -> float:
    """One epoch of softmax CE on (optionally IIF-scaled) logits; returns the mean loss. NaN loss raises."""
    model.train()
    total, seen = 0.0, 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        logits = model(images)
        if scaler is not None:
            logits = scaler(logits)
        loss = F.cross_entropy(logits, labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"classification loss became {loss.item()}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += loss.item() * len(labels)
        seen += len(labels)
    return total / max(seen, 1)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: str, groups: dict[str, torch.Tensor],
             scaler: Optional[IIFLogitScaler] = None) -> dict[str, float]:
    """Top-1 accuracy (%) overall and on the many/medium/few-shot classes (mean of per-class accuracy
    within a group, which equals the sample mean on a balanced test set)."""
    model.eval()
    if scaler is not None:
        scaler.eval()
    num_classes = groups["many"].numel()
    correct = torch.zeros(num_classes)
    count = torch.zeros(num_classes)
    for images, labels in loader:
        logits = model(images.to(device))
        if scaler is not None:
            logits = scaler(logits)
        pred = logits.argmax(1).cpu()
        count += torch.bincount(labels, minlength=num_classes).float()
        correct += torch.bincount(labels[pred == labels], minlength=num_classes).float()
    per_class = torch.where(count > 0, correct / count.clamp(min=1), torch.nan)
    results = {"top1": 100.0 * correct.sum().item() / max(count.sum().item(), 1)}
    for name, mask in groups.items():
        values = per_class[mask & (count > 0)]
        results[name] = 100.0 * values.mean().item() if values.numel() else float("nan")
    return results


def decoupled_retrain(model: nn.Module, loader: DataLoader, weights: torch.Tensor, epochs: int, lr: float,
                      device: str, momentum: float = 0.9) -> IIFLogitScaler:
    """Decoupled stage 2: freeze every parameter except the classifier, re-initialise it (Xavier-uniform
    weights, zero bias), train it ``epochs`` epochs with IIF-CE (softmax CE on ``w * logits``).
    BatchNorm statistics stay frozen (model kept in eval mode for the features). Returns the
    ``train_test`` scaler to use at inference."""
    fc = classifier_layer(model)
    for p in model.parameters():
        p.requires_grad_(False)
    nn.init.xavier_uniform_(fc.weight)
    nn.init.zeros_(fc.bias)
    for p in fc.parameters():
        p.requires_grad_(True)
    scaler = IIFLogitScaler(weights, mode="train_test").to(device)
    optimizer = torch.optim.SGD(fc.parameters(), lr=lr, momentum=momentum)
    for epoch in range(epochs):
        model.eval()  # frozen BN statistics; only the classifier learns
        total, seen = 0.0, 0
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            loss = F.cross_entropy(scaler(model(images)), labels)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"decoupled IIF loss became {loss.item()}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(labels)
            seen += len(labels)
        logger.info("decoupled epoch %d/%d: IIF-CE %.4f", epoch + 1, epochs, total / max(seen, 1))
    return scaler
