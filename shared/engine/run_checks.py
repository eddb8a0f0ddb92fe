"""Checks of the keys every run of a framework reads: batch sizes, schedule lengths, checkpoint period, input
sizes, identity-sampler batches. Registered with :func:`~shared.engine.validation.config_check` under the
framework's name (``"detectron2"`` / ``"fastreid"``); :func:`shared.engine.build_cfg` runs them before the
project's own checks, so a bad value is an error naming its key before any data or model is loaded.

Before these checks, ``SOLVER.IMS_PER_BATCH 0`` said "must be divisible by the number of gpus",
``SOLVER.MAX_ITER 0`` failed inside fvcore's schedule, ``SOLVER.CHECKPOINT_PERIOD 0`` divided by zero at the
first iteration, ``INPUT.MIN_SIZE_TRAIN 0`` reported "no GT box", and an identity sampler whose per-process
batch is not a multiple of ``DATALOADER.NUM_INSTANCE`` (fastreid's ``BalancedIdentitySampler``,
``NaiveIdentitySampler``) looped forever without output. ``SOLVER.MAX_ITER`` (``SOLVER.MAX_EPOCH``) 0 is
refused rather than read as "evaluate only": ``--eval-only`` does that.
"""
from __future__ import annotations

from typing import Any

from shared.engine.validation import ConfigValueError, config_check, get_key

__all__ = ["IDENTITY_SAMPLERS", "check_sizes", "world_size"]

#: fastreid samplers that build P x K batches of NUM_INSTANCE images per identity
IDENTITY_SAMPLERS = ("NaiveIdentitySampler", "BalancedIdentitySampler", "SetReWeightSampler")


def world_size() -> int:
    """Number of processes of the run (1 outside ``torch.distributed``)."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _check_int(cfg: Any, key: str, low: int) -> int:
    value = get_key(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigValueError(key, value, f"must be an integer >= {low}")
    return value


def check_sizes(cfg: Any, key: str, *, low: int = 1, count: Any = None) -> None:
    """``key`` is an integer or a list/tuple of integers, each ``>= low`` (``count``: required length)."""
    value = get_key(cfg, key)
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    ok = bool(values) and all(isinstance(v, int) and not isinstance(v, bool) and v >= low for v in values)
    if count is not None and len(values) != count:
        ok = False
    if not ok:
        shape = f"{count} integers" if count is not None else "an integer or a list of integers"
        raise ConfigValueError(key, value, f"must be {shape}, each >= {low}")


def _check_batch(cfg: Any, key: str) -> int:
    batch = _check_int(cfg, key, 1)
    processes = world_size()
    if batch % processes:
        raise ConfigValueError(key, batch, f"is the total batch over all processes and must be divisible by "
                                           f"their number ({processes})")
    return batch


@config_check("detectron2")
def _check_detectron2_run(cfg: Any) -> None:
    """Batch, schedule, checkpoint period, evaluation period, loader workers, input sizes."""
    _check_batch(cfg, "SOLVER.IMS_PER_BATCH")
    _check_int(cfg, "SOLVER.MAX_ITER", 1)
    _check_int(cfg, "SOLVER.CHECKPOINT_PERIOD", 1)
    _check_int(cfg, "TEST.EVAL_PERIOD", 0)
    _check_int(cfg, "DATALOADER.NUM_WORKERS", 0)
    check_sizes(cfg, "INPUT.MIN_SIZE_TRAIN")
    if cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING == "range":
        check_sizes(cfg, "INPUT.MIN_SIZE_TRAIN", count=2)
    check_sizes(cfg, "INPUT.MAX_SIZE_TRAIN")
    check_sizes(cfg, "INPUT.MIN_SIZE_TEST", low=0)  # 0: no resizing at test time (detectron2)
    check_sizes(cfg, "INPUT.MAX_SIZE_TEST")


@config_check("fastreid")
def _check_fastreid_run(cfg: Any) -> None:
    """Batches, epochs, checkpoint period, input sizes, and identity-sampler batches (the hang)."""
    batch = _check_batch(cfg, "SOLVER.IMS_PER_BATCH")
    _check_batch(cfg, "TEST.IMS_PER_BATCH")
    _check_int(cfg, "SOLVER.MAX_EPOCH", 1)
    _check_int(cfg, "SOLVER.CHECKPOINT_PERIOD", 1)
    _check_int(cfg, "TEST.EVAL_PERIOD", 0)
    _check_int(cfg, "DATALOADER.NUM_WORKERS", 0)
    check_sizes(cfg, "INPUT.SIZE_TRAIN", count=2)
    check_sizes(cfg, "INPUT.SIZE_TEST", count=2)
    if cfg.DATALOADER.SAMPLER_TRAIN in IDENTITY_SAMPLERS:
        k = _check_int(cfg, "DATALOADER.NUM_INSTANCE", 1)
        per_process = batch // world_size()
        # fastreid's identity samplers add NUM_INSTANCE images at a time and yield when the batch is full:
        # a batch that is not a multiple of it is never full, and the sampler loops forever
        if per_process % k:
            raise ConfigValueError(
                "SOLVER.IMS_PER_BATCH", batch,
                f"must be a multiple of DATALOADER.NUM_INSTANCE={k} per process ({per_process} per process "
                f"with {world_size()} process(es)): {cfg.DATALOADER.SAMPLER_TRAIN} builds batches of "
                "NUM_INSTANCE images per identity")
