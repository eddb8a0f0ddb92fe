"""Repairs of detectron2 v0.6 defects that surface under Python >= 3.11 and torch >= 2 (installed by
:func:`shared.compat.apply` through import hooks; each one is pinned by ``tests/foundation/test_compat.py``).

* ``detectron2.export.api`` imports ``caffe2.proto`` at module level. caffe2 left torch long ago, so the whole
  ``detectron2.export`` package -- ``TracingAdapter``, ``scripting_with_instances``, ``dump_torchscript_IR``
  -- and ``detectron2.utils.analysis`` (flop / parameter / activation counting, which imports
  ``TracingAdapter``) fail to import. Without caffe2 we load :func:`caffe2_free_export_api` instead: the
  same public names, where ``add_export_config`` works and the caffe2 exporters raise an ``ImportError``
  that says why.
* ``MapDataset.__getitem__`` retries an element its mapper dropped (returned ``None``) with
  ``random.sample(a_set, k=1)``, which raises ``TypeError`` since Python 3.11. :func:`map_dataset_getitem`
  draws the retry from a sorted list instead (same uniform choice) and refuses, naming the cause, when the
  mapper has dropped every element.
* ``hooks.LRScheduler.state_dict`` / ``load_state_dict`` only handle
  ``torch.optim.lr_scheduler._LRScheduler``; torch 2's schedulers derive from ``LRScheduler`` instead, so
  their state was never checkpointed and ``--resume`` restarted the schedule at ``last_epoch`` 0.
* detectron2's ``create_ddp_model`` and fastreid's ``DefaultTrainer`` wrap the model in
  ``DistributedDataParallel(model, device_ids=[local_rank])``, which torch refuses for a CPU model. Their
  module-level name is replaced by :func:`cpu_capable_ddp_class` (drops ``device_ids`` / ``output_device``
  for CPU modules), so ``shared.engine.launch`` can run their trainers as gloo processes on the CPU.
  fastreid's DDP also gets ``find_unused_parameters=True`` (its own comment in ``DefaultTrainer`` points at
  the need but never sets it): with a metric-only loss (e.g. AdaSP alone) the classifier gets no gradient,
  and DDP then never all-reduces the gradients at the first iteration (every rank steps on its own
  gradient) and fails at the second.
* ``log.txt`` files carried ANSI colour codes: detectron2's ``default_setup`` logs the config highlighted
  by pygments and the class histogram through ``termcolor``, so the escape sequences are in the *message*,
  and the plain file formatter writes them as they are. :func:`patch_log_stream` wraps the log files that
  detectron2's and fastreid's ``setup_logger`` open (``_cached_log_stream``) in :class:`PlainTextStream`,
  which drops the sequences; the console keeps its colours.
"""
from __future__ import annotations

import functools
import logging
import re
import types

__all__ = [
    "ANSI_ESCAPE",
    "PlainTextStream",
    "caffe2_free_export_api",
    "cpu_capable_ddp_class",
    "patch_ddp_name",
    "lr_scheduler_hook_load_state_dict",
    "lr_scheduler_hook_state_dict",
    "map_dataset_getitem",
    "patch_data_common",
    "patch_engine_hooks",
    "patch_log_stream",
]

_CAFFE2_MISSING = ("{name} needs caffe2, which is no longer part of torch (removed in torch 2.x); "
                   "detectron2's caffe2/ONNX export is unavailable. TorchScript export "
                   "(detectron2.export.scripting_with_instances, TracingAdapter + torch.jit.trace) works.")


def _caffe2_only(name: str):
    def unavailable(*args, **kwargs):
        raise ImportError(_CAFFE2_MISSING.format(name=name))

    unavailable.__name__ = unavailable.__qualname__ = name
    unavailable.__doc__ = _CAFFE2_MISSING.format(name=name)
    return unavailable


def add_export_config(cfg):
    """detectron2's ``add_export_config`` (no caffe2 needed): adds ``EXPORT_CAFFE2.USE_HEATMAP_MAX_KEYPOINT``
    (default ``False``) and keeps the config's frozen state."""
    from detectron2.config import CfgNode

    frozen = cfg.is_frozen()
    cfg.defrost()
    cfg.EXPORT_CAFFE2 = CfgNode()
    cfg.EXPORT_CAFFE2.USE_HEATMAP_MAX_KEYPOINT = False
    if frozen:
        cfg.freeze()
    return cfg


def caffe2_free_export_api(module: types.ModuleType) -> None:
    """Fill ``module`` (standing in for ``detectron2.export.api``) with the v0.6 public names."""
    module.__doc__ = "caffe2-free stand-in for detectron2.export.api (shared.compat): no caffe2 installed."
    module.add_export_config = add_export_config
    for name in ("Caffe2Tracer", "Caffe2Model", "export_caffe2_model", "export_onnx_model"):
        setattr(module, name, _caffe2_only(name))
    module.__all__ = ["add_export_config", "export_caffe2_model", "Caffe2Model", "export_onnx_model",
                      "Caffe2Tracer"]


def map_dataset_getitem(self, idx):
    """``MapDataset.__getitem__``: apply the mapper; when it returns ``None`` retry a uniformly drawn other
    element (the failed index leaves the pool of candidates until it maps again), warning from the third
    retry on, as detectron2 v0.6 -- but drawing from a sequence, which Python >= 3.11 requires."""
    retries = 0
    cur = int(idx)
    while True:
        data = self._map_func(self._dataset[cur])
        if data is not None:
            self._fallback_candidates.add(cur)
            return data
        retries += 1
        self._fallback_candidates.discard(cur)
        if not self._fallback_candidates:
            raise RuntimeError(
                f"MapDataset: the mapper returned None for every element tried (started at index {idx}, "
                f"{retries} tries over a dataset of {len(self._dataset)}); nothing is left to fall back on "
                "-- check the mapper (e.g. a crop that drops every box)")
        cur = self._rng.choice(sorted(self._fallback_candidates))
        if retries >= 3:
            logging.getLogger("detectron2.data.common").warning(
                "Failed to apply `_map_func` for idx: %s, retry count: %d", idx, retries)


def patch_data_common(module: types.ModuleType) -> bool:
    if getattr(module.MapDataset.__getitem__, "_shared_compat", False):
        return False
    map_dataset_getitem._shared_compat = True  # type: ignore[attr-defined]
    module.MapDataset.__getitem__ = map_dataset_getitem
    return True


def _is_torch_scheduler(obj) -> bool:
    import torch

    base = getattr(torch.optim.lr_scheduler, "LRScheduler", torch.optim.lr_scheduler._LRScheduler)
    return isinstance(obj, base)


def lr_scheduler_hook_state_dict(self) -> dict:
    """``hooks.LRScheduler.state_dict`` for every torch scheduler (``LRScheduler`` base of torch >= 2)."""
    return self.scheduler.state_dict() if _is_torch_scheduler(self.scheduler) else {}


def lr_scheduler_hook_load_state_dict(self, state_dict: dict) -> None:
    """``hooks.LRScheduler.load_state_dict`` for every torch scheduler (``LRScheduler`` base, torch >= 2)."""
    if _is_torch_scheduler(self.scheduler):
        logging.getLogger("detectron2.engine.hooks").info("Loading scheduler from state_dict ...")
        self.scheduler.load_state_dict(state_dict)


def patch_engine_hooks(module: types.ModuleType) -> bool:
    hook = module.LRScheduler
    if getattr(hook.state_dict, "_shared_compat", False):
        return False
    for fn in (lr_scheduler_hook_state_dict, lr_scheduler_hook_load_state_dict):
        fn._shared_compat = True  # type: ignore[attr-defined]
    hook.state_dict = lr_scheduler_hook_state_dict
    hook.load_state_dict = lr_scheduler_hook_load_state_dict
    return True


_DDP_CLASSES: dict = {}


def cpu_capable_ddp_class(find_unused_parameters: bool = False):
    """A ``DistributedDataParallel`` subclass that ignores ``device_ids`` / ``output_device`` when the
    module's parameters are on the CPU (torch requires ``None`` there); on GPUs it is DDP unchanged.
    ``find_unused_parameters`` is its default for that argument."""
    if find_unused_parameters not in _DDP_CLASSES:
        from torch.nn.parallel import DistributedDataParallel as DDP

        class DistributedDataParallel(DDP):
            def __init__(self, module, device_ids=None, output_device=None, *args, **kwargs):
                first = next(module.parameters(), None)
                if first is not None and first.device.type == "cpu":
                    device_ids = output_device = None
                kwargs.setdefault("find_unused_parameters", find_unused_parameters)
                super().__init__(module, device_ids, output_device, *args, **kwargs)

        DistributedDataParallel.__module__ = __name__
        _DDP_CLASSES[find_unused_parameters] = DistributedDataParallel
    return _DDP_CLASSES[find_unused_parameters]


def patch_ddp_name(module: types.ModuleType) -> bool:
    """Point ``module.DistributedDataParallel`` (detectron2/fastreid ``engine.defaults``) at the CPU-capable
    subclass (for fastreid, finding unused parameters: see the module docstring)."""
    cls = cpu_capable_ddp_class(find_unused_parameters=module.__name__.startswith("fastreid"))
    if module.DistributedDataParallel is cls:
        return False
    module.DistributedDataParallel = cls
    return True


#: a CSI escape sequence (colours, cursor movement): ESC [ parameters final-letter
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class PlainTextStream:
    """A text file that writes everything without ANSI escape sequences (every other attribute is the
    file's)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(ANSI_ESCAPE.sub("", text))

    def __getattr__(self, name):
        return getattr(self._stream, name)


def patch_log_stream(module: types.ModuleType) -> bool:
    """Make ``module._cached_log_stream`` (detectron2's / fastreid's ``utils.logger``) return the opened log
    file as a :class:`PlainTextStream`, one per file name as before."""
    opener = module._cached_log_stream
    if getattr(opener, "_shared_compat", False):
        return False

    @functools.lru_cache(maxsize=None)
    def plain_log_stream(filename):
        return PlainTextStream(opener(filename))

    plain_log_stream._shared_compat = True  # type: ignore[attr-defined]
    module._cached_log_stream = plain_log_stream
    return True
