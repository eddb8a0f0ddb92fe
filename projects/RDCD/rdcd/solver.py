"""Optimizers (chosen by ``SOLVER.OPTIMIZER`` from :data:`OPTIMIZERS`), including our own LARS
(SSCD trains with LARS; its former source, lightning-bolts, is unmaintained)."""

from __future__ import annotations

from typing import Iterable

import torch
from detectron2.solver import build_optimizer as d2_build_optimizer

from shared.registry import get_or_raise, register_as

#: SOLVER.OPTIMIZER -> builder(cfg, model) -> torch.optim.Optimizer
OPTIMIZERS = {}


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise adaptive rate scaling (You et al. 2017).

    For every parameter p with gradient g and ``p.ndim > 1`` (biases and norm scales are not adapted and
    get no weight decay):
        d = g + wd · p;   d ← d · η ||p|| / (||g|| + wd ||p|| + ε)   (when ||p|| > 0 and ||g|| > 0)
    then v ← μ v + d and p ← p − lr · v.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
        eps: float = 1e-8,
    ):
        if lr < 0:
            raise ValueError(f"invalid learning rate {lr}")
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient, eps=eps
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                if p.ndim > 1:
                    wd = group["weight_decay"]
                    param_norm, grad_norm = torch.norm(p), torch.norm(p.grad)
                    update = update.add(p, alpha=wd)
                    if param_norm > 0 and grad_norm > 0:
                        ratio = (
                            group["trust_coefficient"]
                            * param_norm
                            / (grad_norm + wd * param_norm + group["eps"])
                        )
                        update = update.mul(ratio)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = update.clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(update)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def _trainable(model: torch.nn.Module):
    return [p for p in model.parameters() if p.requires_grad]


@register_as(OPTIMIZERS, "SGD")
def _build_sgd(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """detectron2's SGD (momentum, WEIGHT_DECAY / WEIGHT_DECAY_NORM) over the trainable parameters."""
    return d2_build_optimizer(cfg, model)


@register_as(OPTIMIZERS, "LARS")
def _build_lars(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    s = cfg.SOLVER
    return LARS(
        _trainable(model),
        lr=s.BASE_LR,
        momentum=s.MOMENTUM,
        weight_decay=s.WEIGHT_DECAY,
        trust_coefficient=s.LARS_TRUST,
        eps=s.LARS_EPS,
    )


@register_as(OPTIMIZERS, "AdamW")
def _build_adamw(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(_trainable(model), lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY)


def build_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimizer named by ``SOLVER.OPTIMIZER``; unknown names raise ``KeyError``."""
    return get_or_raise(OPTIMIZERS, cfg.SOLVER.OPTIMIZER, "SOLVER.OPTIMIZER")(cfg, model)
