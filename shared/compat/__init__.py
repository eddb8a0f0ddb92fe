"""Runtime compatibility layer for detectron2 0.6, lvis 0.5.3 and fastreid 1.4.0.

Those releases predate Python 3.11, numpy 2, Pillow 10, setuptools 81 and torch 2. Rather than editing
installed files, :func:`apply` restores the handful of names they rely on. It is called once, on
``import shared`` (and every project package imports ``shared`` first), and it is idempotent.

Fixes (each is exercised by ``tests/foundation/test_compat.py``):

========================  =============================================  ==============================
broken name               who needs it                                   restored as
========================  =============================================  ==============================
``np.float`` / ``np.int``  lvis ``LVISEval.accumulate``, detectron2 data   the builtin types
``np.str`` / ``np.object``
``Image.LINEAR`` ...      ``detectron2.data.transforms`` (import time)   ``Image.BILINEAR`` ...
``pkg_resources``         ``detectron2.model_zoo`` (import time)         minimal module on importlib
``collections.Mapping``   ``fastreid.data.build``, ``evaluation``        ``collections.abc`` aliases
``torch._six``            ``fastreid.data.build`` (import time)          stub module
``DataLoaderX``           fastreid train/test loaders (CUDA stream)      CPU-safe when CUDA is absent
``build_optimizer``       fastreid ``DefaultTrainer`` (ContiguousParams)  ``contiguous=False`` default
d2 ``export.api``          ``detectron2.export`` / ``utils.analysis``     caffe2-free module (no caffe2)
d2 ``MapDataset``          mappers returning ``None`` (Python >= 3.11)    sample from a sorted list
d2 ``LRScheduler`` hook    ``--resume`` with torch 2 schedulers           saves ``LRScheduler`` state
DDP (d2 and fastreid)     ``create_ddp_model``, fastreid trainer         no ``device_ids`` on the CPU
colour codes in log.txt   d2 / fastreid ``setup_logger`` log files      written as plain text
``load_yaml_with_base``   fvcore / fastreid ``CfgNode.merge_from_file``  ``yaml.safe_load`` only, local
                                                                         ``_BASE_`` files, no cycles
d2 proposal files         ``load_proposals_into_dataset``                restricted unpickler
d2 prediction files       COCO / LVIS evaluators' ``PathManager``        temp file + rename
========================  =============================================  ==============================

The detectron2 repairs live in :mod:`shared.compat.detectron2_fixes`; the safe config and proposal readers
in :mod:`shared.compat.safe_config` (a config or proposal file never runs code). detectron2 v0.6's own test
suite runs on this stack with ``python .ci/run_detectron2_tests.py /path/to/detectron2`` (exclusions,
with reasons, in ``.ci/detectron2_test_exclusions.txt``).

The last one is a silent-correctness bug rather than a crash: fastreid's default ``ContiguousParams``
makes every ``param.grad`` a view of one flat buffer, and torch >= 2.0's ``optimizer.zero_grad()``
(``set_to_none=True``) drops that buffer's gradient, so backward writes fresh tensors the optimizer never
sees and *no weight is ever updated*. The non-contiguous parameter list has no such coupling.
"""

from __future__ import annotations

import collections
import collections.abc
import importlib.abc
import importlib.resources
import importlib.util
import os
import math
import sys
import types

__all__ = ["apply", "applied_fixes"]

_APPLIED: list[str] = []


def applied_fixes() -> list[str]:
    """Names of the fixes :func:`apply` installed in this interpreter (for logging and tests)."""
    return list(_APPLIED)


def _fix_numpy_aliases() -> None:
    import numpy as np

    for name, value in (("int", int), ("float", float), ("str", str), ("object", object), ("bool", bool)):
        if name not in np.__dict__:
            setattr(np, name, value)
            _APPLIED.append(f"numpy.{name}")


def _fix_pil_aliases() -> None:
    from PIL import Image

    for old, new in (("LINEAR", "BILINEAR"), ("CUBIC", "BICUBIC"), ("ANTIALIAS", "LANCZOS")):
        if not hasattr(Image, old):
            setattr(Image, old, getattr(Image.Resampling, new))
            _APPLIED.append(f"PIL.Image.{old}")


def _fix_pkg_resources() -> None:
    if importlib.util.find_spec("pkg_resources") is not None:
        return
    module = types.ModuleType("pkg_resources")
    module.__doc__ = "Minimal stand-in (shared.compat): setuptools >= 81 no longer ships pkg_resources."

    def resource_filename(package: str, resource: str) -> str:
        return os.fspath(importlib.resources.files(package).joinpath(resource))

    def resource_exists(package: str, resource: str) -> bool:
        return importlib.resources.files(package).joinpath(resource).exists()

    module.resource_filename = resource_filename
    module.resource_exists = resource_exists
    sys.modules["pkg_resources"] = module
    _APPLIED.append("pkg_resources")


def _fix_collections_aliases() -> None:
    for name in ("Mapping", "MutableMapping", "Sequence", "MutableSequence", "Iterable", "Iterator",
                 "Callable", "Set", "MutableSet", "Hashable", "Sized", "Container"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))
            _APPLIED.append(f"collections.{name}")


def _fix_torch_six() -> None:
    if "torch._six" in sys.modules:
        return
    module = types.ModuleType("torch._six")
    module.__doc__ = "Stand-in (shared.compat): torch._six was removed in torch 2.0."
    module.string_classes = (str, bytes)
    module.int_classes = int
    module.container_abcs = collections.abc
    module.inf = math.inf
    module.nan = math.nan
    sys.modules["torch._six"] = module
    _APPLIED.append("torch._six")


def _patch_fastreid_data_utils(module: types.ModuleType) -> None:
    """Make ``DataLoaderX`` usable without CUDA: it creates a ``torch.cuda.Stream`` in ``__init__``."""
    import torch

    original = module.DataLoaderX
    if getattr(original, "_shared_compat", False):
        return

    class DataLoaderX(original):  # type: ignore[misc, valid-type]
        _shared_compat = True

        def __init__(self, local_rank, **kwargs):
            if torch.cuda.is_available():
                super().__init__(local_rank, **kwargs)
                self._cuda = True
            else:  # plain prefetching DataLoader on CPU
                torch.utils.data.DataLoader.__init__(self, **kwargs)
                self.local_rank = local_rank
                self._cuda = False

        def __iter__(self):
            if self._cuda:
                return super().__iter__()
            return torch.utils.data.DataLoader.__iter__(self)

        def __next__(self):  # pragma: no cover - fastreid iterates through __iter__
            if self._cuda:
                return super().__next__()
            raise TypeError("iterate over DataLoaderX with iter()")

        def _shutdown_background_thread(self):
            if self._cuda:
                super()._shutdown_background_thread()

    DataLoaderX.__name__ = DataLoaderX.__qualname__ = "DataLoaderX"
    DataLoaderX.__module__ = module.__name__
    module.DataLoaderX = DataLoaderX
    build = sys.modules.get("fastreid.data.build")
    if build is not None and getattr(build, "DataLoaderX", None) is original:
        build.DataLoaderX = DataLoaderX
    _APPLIED.append("fastreid.DataLoaderX")


def _patch_fastreid_solver_build(module: types.ModuleType) -> None:
    """Default fastreid's ``build_optimizer`` to ``contiguous=False`` (see the module docstring)."""
    original = module.build_optimizer
    if getattr(original, "_shared_compat", False):
        return

    def build_optimizer(cfg, model, contiguous: bool = False):
        return original(cfg, model, contiguous=contiguous)

    build_optimizer._shared_compat = True  # type: ignore[attr-defined]
    build_optimizer.__doc__ = original.__doc__
    module.build_optimizer = build_optimizer
    for name in ("fastreid.solver", "fastreid.engine.defaults"):
        other = sys.modules.get(name)
        if other is not None and getattr(other, "build_optimizer", None) is original:
            other.build_optimizer = build_optimizer
    _APPLIED.append("fastreid.build_optimizer")


class _ReplacementLoader(importlib.abc.Loader):
    """Executes a module by filling it with ``fill(module)`` instead of running its source."""

    def __init__(self, fill):
        self._fill = fill

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        self._fill(module)


class _PostImportHook(importlib.abc.MetaPathFinder):
    """Runs a patch function right after a named module has been executed; modules in ``replacements``
    (name -> (condition, fill)) are built by ``fill`` instead when ``condition()`` is true."""

    def __init__(self, patches: dict, replacements: dict | None = None):
        self._patches = patches
        self._replacements = replacements or {}
        self._busy: set[str] = set()

    def find_spec(self, fullname, path=None, target=None):
        if fullname in self._replacements:
            condition, fill = self._replacements[fullname]
            if condition():
                return importlib.util.spec_from_loader(fullname, _ReplacementLoader(fill))
            return None
        if fullname not in self._patches or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._busy.discard(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader, patch = spec.loader, self._patches[fullname]

        class _Loader(importlib.abc.Loader):
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                loader.exec_module(module)
                patch(module)

        spec.loader = _Loader()
        return spec


def _recorded(patch, label: str):
    def run(module):
        if patch(module) is not False:
            _APPLIED.append(label)

    return run


def _caffe2_missing() -> bool:
    return importlib.util.find_spec("caffe2") is None


def _install_import_hooks() -> None:
    from shared.compat import detectron2_fixes as d2
    from shared.compat import safe_config

    patches = {
        "fvcore.common.config": _recorded(safe_config.patch_fvcore_config, "fvcore.CfgNode.safe_yaml"),
        "fastreid.config.config": _recorded(safe_config.patch_fastreid_config, "fastreid.CfgNode.safe_yaml"),
        "detectron2.data.build": _recorded(safe_config.patch_proposal_loader, "detectron2.safe_proposals"),
        "detectron2.evaluation.coco_evaluation": _recorded(safe_config.patch_evaluator_writes,
                                                           "detectron2.COCOEvaluator.atomic_writes"),
        "detectron2.evaluation.lvis_evaluation": _recorded(safe_config.patch_evaluator_writes,
                                                           "detectron2.LVISEvaluator.atomic_writes"),
        "fastreid.data.data_utils": _patch_fastreid_data_utils,
        "fastreid.solver.build": _patch_fastreid_solver_build,
        "detectron2.data.common": _recorded(d2.patch_data_common, "detectron2.MapDataset"),
        "detectron2.engine.hooks": _recorded(d2.patch_engine_hooks, "detectron2.hooks.LRScheduler"),
        "detectron2.engine.defaults": _recorded(d2.patch_ddp_name, "detectron2.DDP-on-CPU"),
        "fastreid.engine.defaults": _recorded(d2.patch_ddp_name, "fastreid.DDP-on-CPU"),
        "detectron2.utils.logger": _recorded(d2.patch_log_stream, "detectron2.plain-text-log.txt"),
        "fastreid.utils.logger": _recorded(d2.patch_log_stream, "fastreid.plain-text-log.txt"),
    }
    replacements = {}
    if "detectron2.export.api" not in sys.modules:
        replacements["detectron2.export.api"] = (
            _caffe2_missing, _recorded(d2.caffe2_free_export_api, "detectron2.export.api"))
    pending = {}
    for name, patch in patches.items():
        if name in sys.modules:
            patch(sys.modules[name])
        else:
            pending[name] = patch
    if (pending or replacements) and not any(isinstance(f, _PostImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _PostImportHook(pending, replacements))


def apply() -> None:
    """Install every fix once; later calls do nothing."""
    if getattr(apply, "_done", False):
        return
    _fix_numpy_aliases()
    _fix_pil_aliases()
    _fix_pkg_resources()
    _fix_collections_aliases()
    _fix_torch_six()
    _install_import_hooks()
    apply._done = True  # type: ignore[attr-defined]
