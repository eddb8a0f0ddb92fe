"""Checkpoints that are never half-written, installed the same way in every trainer.

fvcore's (and so detectron2's and fastreid's) ``Checkpointer.save`` streams ``torch.save`` straight into
``<name>.pth`` and then overwrites ``last_checkpoint``; a crash or a full disk in between leaves a
truncated file that ``resume_or_load`` will then try to load. :class:`AtomicCheckpointMixin` writes
both to a temporary file in the same directory, flushes it to disk and renames it over the target
(``os.replace`` is atomic on POSIX), so the previous checkpoint stays valid until the new one is complete.

Trainers get it through one mixin, :class:`AtomicCheckpointing`: it turns the checkpointer the base trainer
built (detectron2's ``DetectionCheckpointer``, fastreid's ``Checkpointer``) into its atomic subclass before
the hooks capture it, and gives ``--eval-only`` the same checkpointer through ``build_checkpointer``.

The same mixin makes loading trustworthy (docs/reliability.md):

* every checkpoint written gets ``<name>.pth.sha256`` beside it, checked before the file is read; an empty,
  truncated or altered file is a :class:`CheckpointFileError` naming the file. A checkpoint our trainers
  wrote (it holds the ``"resume"`` state) whose digest is missing is refused too, unless
  ``MODEL.WEIGHTS_ALLOW_MISSING_SHA256``; a file we did not write is checked against the sha256 of the
  weights catalog (:func:`shared.weights.entry_for_file`) when the catalog knows its name;
* weights with a NaN or inf value are refused, naming the file and the first such tensors (evaluating
  them reports AP 0 as if the model had found nothing);
* ``.pth`` files are read with ``torch.load(weights_only=True)`` and model-zoo ``.pkl`` files with
  :func:`safe_pickle_load` (dicts, lists, tuples, strings, numbers and numpy arrays only) -- a weights
  file never runs code;
* weights that do not fit are an error (:class:`IncompatibleCheckpointError`): for ``--eval-only``, for a
  resume and for any full-model checkpoint given as ``MODEL.WEIGHTS`` (one that records its
  ``iteration``/``epoch``), every model parameter and buffer must be loaded, except those matched by
  ``MODEL.WEIGHTS_REINIT`` (regular expressions; heads meant to be re-initialised). Backbone-only files
  (ImageNet / model-zoo ``.pkl``, torchvision ``.pth``) used to start *training* keep detectron2's behaviour
  (missing keys are logged and left initialised), but a file of which not one tensor fits is an error.
* the resume state of :mod:`shared.engine.resume` (RNG states, sampler position) is saved under
  ``"resume"`` and restored on ``--resume``.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import re
import socket
import tempfile
import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer

__all__ = ["AtomicCheckpointMixin", "AtomicCheckpointing", "AtomicDetectionCheckpointer",
           "CheckpointFileError", "IncompatibleCheckpointError", "UnsafePickleError", "add_checkpoint_config",
           "atomic_write_bytes", "make_atomic", "non_finite_tensors", "remove_orphan_tmp_files",
           "safe_pickle_load", "sha256_of_file"]

logger = logging.getLogger(__name__)

#: suffix of the digest file written beside every checkpoint (``sha256sum`` format)
SHA256_SUFFIX = ".sha256"


class CheckpointFileError(RuntimeError):
    """A checkpoint file that cannot be trusted or read (empty, truncated, digest mismatch, unsafe)."""


class UnsafePickleError(CheckpointFileError, pickle.UnpicklingError):
    """A pickle that refers to something other than plain containers, numbers, strings and numpy arrays."""


class IncompatibleCheckpointError(ValueError):
    """Weights that do not fit the model (missing parameters or wrong shapes) where all must be loaded."""


def add_checkpoint_config(cfg) -> None:
    """Add ``MODEL.WEIGHTS_REINIT`` and ``MODEL.WEIGHTS_ALLOW_MISSING_SHA256`` (called by
    :func:`shared.engine.build_cfg` for every framework)."""
    if "WEIGHTS_REINIT" not in cfg.MODEL:
        # regular expressions (re.search) of model parameter/buffer names that may be missing from, or have
        # another shape in, MODEL.WEIGHTS: heads meant to be re-initialised (e.g. "roi_heads.box_predictor")
        cfg.MODEL.WEIGHTS_REINIT = []
    if "WEIGHTS_ALLOW_MISSING_SHA256" not in cfg.MODEL:
        # True: load a checkpoint written by our trainers (it holds the resume state) even when the
        # <file>.sha256 digest written beside it is missing, i.e. unverified; False (default): refuse it
        cfg.MODEL.WEIGHTS_ALLOW_MISSING_SHA256 = False


# ---------------------------------------------------------------------------------------------- safe reading
#: (module, name) globals a model-zoo pickle may reference: what numpy needs to rebuild arrays, dtypes and
#: scalars (numpy >= 2 and the numpy 1.x names old files carry), bytes from Python-2 pickles, OrderedDict
_SAFE_GLOBALS = frozenset({
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
})
_NUMPY_SCALAR_TYPES = re.compile(r"^(float|int|uint|complex)(8|16|32|64|128)$|^bool_?$")


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, filename: str) -> None:
        super().__init__(file, encoding="latin1")
        self._filename = filename

    def find_class(self, module: str, name: str):
        dtype_class = module == "numpy.dtypes" and name.endswith("DType")
        if (module, name) in _SAFE_GLOBALS or dtype_class or (module == "numpy"
                                                              and _NUMPY_SCALAR_TYPES.match(name)):
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"refusing to load {self._filename}: it references {module}.{name}; a weights .pkl may contain "
            "only dicts, lists, tuples, strings, numbers and numpy arrays (a pickle that names other objects "
            "can run code when loaded)")


def safe_pickle_load(path: str) -> Any:
    """Unpickle ``path`` accepting only dicts, lists, tuples, strings, numbers and numpy arrays/dtypes.

    Anything else (a class, a callable such as ``os.system`` in a ``__reduce__``) raises
    :class:`UnsafePickleError` naming the file and the refused global.
    """
    with open(path, "rb") as f:
        try:
            return _RestrictedUnpickler(f, path).load()
        except UnsafePickleError:
            raise
        except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError) as err:
            raise CheckpointFileError(f"cannot read {path}: truncated or not a pickle file "
                                      f"({type(err).__name__}: {err})") from err


def sha256_of_file(path: str, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_file(path: str) -> bool:
    """Empty file or digest mismatch -> :class:`CheckpointFileError` naming ``path``. Returns whether a
    ``<path>.sha256`` digest verified the file."""
    if os.path.getsize(path) == 0:
        raise CheckpointFileError(f"checkpoint file {path} is empty (0 bytes): an interrupted copy or write?")
    sidecar = path + SHA256_SUFFIX
    if not os.path.isfile(sidecar):
        return False
    with open(sidecar) as f:
        expected = f.read().split()[:1]
    actual = sha256_of_file(path)
    if expected != [actual]:
        raise CheckpointFileError(
            f"checkpoint file {path} does not match its digest {sidecar} (sha256 {actual}, recorded "
            f"{expected[0] if expected else 'nothing'}): the file was altered or truncated after it was "
            "written")
    return True


def _check_catalog_digest(path: str) -> None:
    """A weights file the catalog knows by its name (``shared.weights.entry_for_file``) must have the
    catalog's sha256 (or, when only that is published, start with its hash prefix)."""
    from shared.weights import entry_for_file

    entry = entry_for_file(path)
    if entry is None:
        return
    actual = sha256_of_file(path)
    if actual == entry.sha256 or (not entry.sha256 and actual.startswith(entry.hash_prefix or "")):
        return
    raise CheckpointFileError(
        f"weights file {path} is the catalog's {entry.name!r} (by its name) but its sha256 is {actual}, not "
        f"the published {entry.digest_text}: the file was altered or truncated. Delete it (a weights:// "
        "value downloads it again), or rename it if it is another file on purpose")


def non_finite_tensors(state: Dict[str, Any]) -> List[Tuple[str, int, int]]:
    """``(name, non-finite values, values)`` of every floating-point tensor or numpy array of ``state``
    that holds a NaN or an infinity, in the order of ``state``."""
    found = []
    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                found.append((name, bad, value.numel()))
        elif isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating):
            bad = int((~np.isfinite(value)).sum())
            if bad:
                found.append((name, bad, int(value.size)))
    return found


def _check_finite(checkpoint: Dict[str, Any], path: str) -> None:
    """Weights with NaN / inf values -> :class:`CheckpointFileError` naming the file and the first tensors."""
    model = checkpoint.get("model")
    found = non_finite_tensors(model) if isinstance(model, dict) else []
    if found:
        shown = ", ".join(f"{name} ({bad} of {total} values)" for name, bad, total in found[:5])
        raise CheckpointFileError(
            f"refusing to load {path}: {len(found)} of its tensors hold NaN or inf values: {shown}"
            f"{' ...' if len(found) > 5 else ''}. A run that diverged, or a damaged file: its predictions "
            "would be meaningless (an evaluation reports AP 0)")


def _torch_load_weights_only(path: str) -> Any:
    try:
        return torch.load(path, map_location=torch.device("cpu"), weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower() or "weights_only" in str(err).lower():
            raise CheckpointFileError(
                f"refusing to load {path}: it holds Python objects other than tensors, numbers, strings and "
                f"containers (read with torch.load(weights_only=True)); {str(err).splitlines()[0]}") from err
        raise CheckpointFileError(
            f"cannot read checkpoint {path}: truncated or not a torch file ({err})") from err
    except (EOFError, RuntimeError, ValueError) as err:
        raise CheckpointFileError(f"cannot read checkpoint {path}: truncated or not a torch file "
                                  f"({type(err).__name__}: {err})") from err


def _model_zoo_pkl(path: str) -> Dict[str, Any]:
    """A detectron2 model-zoo / Caffe2 ``.pkl`` as detectron2's ``DetectionCheckpointer`` interprets it."""
    data = safe_pickle_load(path)
    if not isinstance(data, dict):
        raise CheckpointFileError(
            f"{path}: expected a dict at the top of the pickle, found {type(data).__name__}")
    if "model" in data and "__author__" in data:  # detectron2 model-zoo layout
        return data
    blobs = data.get("blobs", data)  # Caffe2 detection files keep the tensors under "blobs"
    blobs = {k: v for k, v in blobs.items() if not k.endswith("_momentum")}
    return {"model": blobs, "__author__": "Caffe2", "matching_heuristics": True}


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _host_tag() -> str:
    """8 hex digits naming this machine in temporary file names (host names may hold dots)."""
    return hashlib.sha1(socket.gethostname().encode("utf-8")).hexdigest()[:8]


#: ``.<name>.<pid>-<host tag>.<random>.tmp``: the writer of a temporary file, read by remove_orphan_tmp_files
_TMP_OWNER = re.compile(r"\.(\d+)-([0-9a-f]{8})\.[A-Za-z0-9_]+\.tmp$")


def atomic_write_bytes(path: str, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically (temp file in the same directory + fsync + rename).

    The file gets the permissions an ordinary ``open(path, "wb")`` would give (0666 less the process
    umask), not ``mkstemp``'s private 0600, so a team on a shared cluster can read the checkpoints. The
    temporary file's name carries the writer's pid and host (:func:`remove_orphan_tmp_files`).
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    owner = f"{os.getpid()}-{_host_tag()}"
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.{owner}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class AtomicCheckpointMixin:
    """Mix into any fvcore-style ``Checkpointer`` (detectron2's or fastreid's) before the base class."""

    #: True: every model tensor must be loaded; None ("auto"): only for full-model checkpoints and resumes
    strict: Optional[bool] = None
    #: regular expressions of parameter names allowed to stay initialised (``MODEL.WEIGHTS_REINIT``)
    reinit_patterns: Sequence[str] = ()
    #: load one of our checkpoints whose ``.sha256`` is missing (``MODEL.WEIGHTS_ALLOW_MISSING_SHA256``)
    allow_missing_sha256: bool = False
    #: () -> picklable dict saved under "resume"; and its inverse, called on a full resume
    resume_state_fn: Optional[Callable[[], Dict[str, Any]]] = None
    restore_state_fn: Optional[Callable[[Dict[str, Any]], None]] = None

    def save(self, name: str, **kwargs: Any) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        if self.resume_state_fn is not None:
            data["resume"] = self.resume_state_fn()
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info("Saving checkpoint to %s", save_file)
        buffer = io.BytesIO()
        torch.save(data, buffer)
        payload = buffer.getvalue()
        sidecar = save_file + SHA256_SUFFIX
        if os.path.exists(sidecar):  # a stale digest must never describe the new file
            os.unlink(sidecar)
        atomic_write_bytes(save_file, payload)
        atomic_write_bytes(sidecar, f"{hashlib.sha256(payload).hexdigest()}  {basename}\n".encode())
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        atomic_write_bytes(os.path.join(self.save_dir, "last_checkpoint"), last_filename_basename.encode())

    # ------------------------------------------------------------------------------------------- loading
    def _load_file(self, filename: str) -> Dict[str, Any]:
        verified = _check_file(filename)
        if not verified:
            _check_catalog_digest(filename)
        loaded = self._read_weights(filename)
        if not verified and "resume" in loaded:
            self._refuse_unverified(filename)
        _check_finite(loaded, filename)
        return loaded

    def _read_weights(self, filename: str) -> Dict[str, Any]:
        if filename.endswith(".pkl"):
            return _model_zoo_pkl(filename)
        if filename.endswith(".pyth"):  # pycls files: detectron2's reader, but through weights_only
            data = _torch_load_weights_only(filename)
            state = {k: v for k, v in data["model_state"].items() if not k.endswith("num_batches_tracked")}
            return {"model": state, "__author__": "pycls", "matching_heuristics": True}
        loaded = _torch_load_weights_only(filename)
        if not isinstance(loaded, dict):
            raise CheckpointFileError(
                f"{filename}: expected a dict of tensors, found {type(loaded).__name__}")
        if "model" not in loaded:
            loaded = {"model": loaded}
        return loaded

    def _refuse_unverified(self, filename: str) -> None:
        """One of our checkpoints (it holds the resume state) without its digest: refused unless allowed."""
        sidecar = filename + SHA256_SUFFIX
        if not self.allow_missing_sha256:
            raise CheckpointFileError(
                f"checkpoint {filename} was written by a trainer of this toolkit (it holds the resume state) "
                f"but its digest {sidecar} is missing, so it cannot be verified (copied without it, or "
                "altered?). Copy the .sha256 file beside it, or set MODEL.WEIGHTS_ALLOW_MISSING_SHA256 True "
                "to load it unverified")
        logger.warning("Loading %s without its digest %s (MODEL.WEIGHTS_ALLOW_MISSING_SHA256): the file is "
                       "not verified", filename, sidecar)

    def load(self, path: str, checkpointables: Optional[List[str]] = None) -> Dict[str, Any]:
        self._loading = {"path": path, "resume": checkpointables is None}
        try:
            extra = super().load(path, checkpointables)
        finally:
            self._loading = None
        resume_state = extra.pop("resume", None) if isinstance(extra, dict) else None
        if checkpointables is None and resume_state is not None and self.restore_state_fn is not None:
            self.restore_state_fn(resume_state)
        return extra

    def resume_or_load(self, path: str, *, resume: bool = True) -> Dict[str, Any]:
        if resume and self.save_to_disk:
            remove_orphan_tmp_files(self.save_dir)
        return super().resume_or_load(path, resume=resume)

    def _load_model(self, checkpoint: Dict[str, Any]):
        loading = getattr(self, "_loading", None) or {"path": "<checkpoint>", "resume": False}
        full = "iteration" in checkpoint or "epoch" in checkpoint
        # a tensor with no elements holds nothing to load (FastReID builds its classifier with 0 classes for
        # evaluation, when the training set is unknown)
        model_keys = [k for k, v in self.model.state_dict().items() if v.numel() > 0]
        incompatible = super()._load_model(checkpoint)
        if incompatible is None:
            return incompatible
        strict = self.strict is True or (self.strict is None and (full or loading["resume"]))
        check_loaded(model_keys, incompatible, loading["path"], strict, self.reinit_patterns)
        return incompatible


def check_loaded(model_keys: Sequence[str], incompatible: Any, path: str, strict: bool,
                 reinit_patterns: Sequence[str] = ()) -> None:
    """Refuse weights that do not fit.

    ``model_keys``: the model tensors that must be loaded. Always an error: not one of them was loaded. With
    ``strict``: any of them missing from the file or of another shape, unless its name matches one of
    ``reinit_patterns`` (``re.search``).
    """
    required = set(model_keys)
    shapes = {k: (ckpt, model) for k, ckpt, model in getattr(incompatible, "incorrect_shapes", [])
              if k in required}
    missing = (set(incompatible.missing_keys) | set(shapes)) & required
    if model_keys and missing.issuperset(model_keys):
        raise IncompatibleCheckpointError(
            f"none of the model's {len(model_keys)} parameters/buffers were found in {path} (with the right "
            "shape): a checkpoint of another architecture, or not a weights file?")
    if not strict:
        return
    refused = sorted(k for k in missing if not any(re.search(p, k) for p in reinit_patterns))
    if refused:
        details = [f"{k} (shape {shapes[k][0]} in the file, {shapes[k][1]} in the model)"
                   if k in shapes else k for k in refused[:8]]
        raise IncompatibleCheckpointError(
            f"{path} does not fit the model: {len(refused)} of its {len(model_keys)} parameters/buffers are "
            f"missing or of another shape: {', '.join(details)}{' ...' if len(refused) > 8 else ''}. "
            "Loading for evaluation, resuming, or from a full-model checkpoint requires every one of them; "
            "to re-initialise heads on purpose list them in MODEL.WEIGHTS_REINIT (regular expressions)")


class AtomicDetectionCheckpointer(AtomicCheckpointMixin, DetectionCheckpointer):
    """Detectron2's ``DetectionCheckpointer`` with atomic saves."""


_ATOMIC_CLASSES: Dict[type, type] = {DetectionCheckpointer: AtomicDetectionCheckpointer}


def _atomic_class(cls: Type) -> Type:
    if issubclass(cls, AtomicCheckpointMixin):
        return cls
    if cls not in _ATOMIC_CLASSES:
        _ATOMIC_CLASSES[cls] = type(f"Atomic{cls.__name__}", (AtomicCheckpointMixin, cls), {})
    return _ATOMIC_CLASSES[cls]


def make_atomic(checkpointer: Any) -> Any:
    """Give ``checkpointer`` (any fvcore-style checkpointer) atomic saves, in place; returns it.

    Its class becomes the subclass ``(AtomicCheckpointMixin, <its class>)``, so every attribute (save dir,
    checkpointables, the trainer it points to) and every reference to it stay as they were.
    """
    checkpointer.__class__ = _atomic_class(type(checkpointer))
    return checkpointer


class AtomicCheckpointing:
    """Trainer mixin (list it before the base trainer): atomic checkpoints for training and ``--eval-only``.

    ``checkpointer_cls`` is the base trainer's checkpointer (detectron2's ``DetectionCheckpointer``, which
    also reads model-zoo ``.pkl`` files; FastReID trainers set fastreid's ``Checkpointer``).
    """

    checkpointer_cls: Type = DetectionCheckpointer

    def build_hooks(self):
        # detectron2's and fastreid's DefaultTrainer build self.checkpointer just before build_hooks; make it
        # atomic before the PeriodicCheckpointer hook captures it
        self._install_reliability()
        return _rng_neutral_eval(super().build_hooks())

    def _install_reliability(self) -> None:
        """Atomic + verified checkpointer, ``MODEL.WEIGHTS_REINIT``, and the deterministic-resume state
        (:mod:`shared.engine.resume`): the training loader's sampler becomes resumable and the RNG states and
        sampler position go into every checkpoint."""
        from shared.datasets.readers import install_reader_hooks
        from shared.engine.resume import TrainingResumeState

        install_reader_hooks()  # again: FastReID's reader exists only once fastreid.data is imported
        self.checkpointer = make_atomic(self.checkpointer)
        self.checkpointer.reinit_patterns = tuple(_reinit_patterns(self.cfg))
        self.checkpointer.allow_missing_sha256 = _allow_missing_sha256(self.cfg)
        self._resume_state = TrainingResumeState.attach(self)
        state = weakref.ref(self._resume_state)
        self.checkpointer.resume_state_fn = lambda: state().state_dict()
        self.checkpointer.restore_state_fn = lambda s: state().load_state_dict(s)

    def state_dict(self) -> Dict[str, Any]:
        """The base trainer's state plus the inner trainer's (optimizer, AMP scaler): detectron2 v0.6's
        ``DefaultTrainer`` leaves ``_trainer`` out, so its checkpoints lose the optimizer's momentum and a
        resumed run restarts it from zero."""
        ret = super().state_dict()
        inner = getattr(self, "_trainer", None)
        if "_trainer" not in ret and inner is not None and hasattr(inner, "state_dict"):
            ret["_trainer"] = inner.state_dict()
        return ret

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        inner = getattr(self, "_trainer", None)
        if "_trainer" in state_dict and inner is not None:
            inner.load_state_dict(state_dict["_trainer"])

    @classmethod
    def build_checkpointer(cls, model: torch.nn.Module, cfg, *, strict: Optional[bool] = True,
                           **checkpointables: Any):
        """The checkpointer ``--eval-only`` loads ``MODEL.WEIGHTS`` with (``strict=True``: every model tensor
        must be loaded, except ``MODEL.WEIGHTS_REINIT``); ``GenericTrainer`` trains with ``strict=None``."""
        checkpointer = make_atomic(cls.checkpointer_cls(model, cfg.OUTPUT_DIR, **checkpointables))
        checkpointer.strict = strict
        checkpointer.reinit_patterns = tuple(_reinit_patterns(cfg))
        checkpointer.allow_missing_sha256 = _allow_missing_sha256(cfg)
        return checkpointer


def _reinit_patterns(cfg) -> List[str]:
    return list(cfg.MODEL.get("WEIGHTS_REINIT", []) or [])


def _allow_missing_sha256(cfg) -> bool:
    return bool(cfg.MODEL.get("WEIGHTS_ALLOW_MISSING_SHA256", False))


def _rng_neutral_eval(hook_list: List[Any]) -> List[Any]:
    """Evaluation hooks run with the RNG states saved and restored around them, so an evaluation (its loaders
    draw worker seeds) never changes the training stream: a resumed run, which skips the evaluation that ran
    before the kill, stays identical to the uninterrupted one."""
    from shared.engine.resume import preserve_rng

    for hook in hook_list:
        func = getattr(hook, "_func", None)
        if type(hook).__name__ == "EvalHook" and callable(func) and not getattr(func, "_rng_neutral", False):
            def wrapped(*args, _func=func, **kwargs):
                with preserve_rng():
                    return _func(*args, **kwargs)
            wrapped._rng_neutral = True
            hook._func = wrapped
    return hook_list


def remove_orphan_tmp_files(directory: str) -> List[str]:
    """Delete the ``.<name>.*.tmp`` files :func:`atomic_write_bytes` leaves when a process is killed during a
    write (any exception removes its own); returns the removed paths.

    A file whose writer is still running on this machine, or ran on another machine (which cannot be
    checked from here), is kept: it may be another run's write in flight. Files without the writer in their
    name (written by earlier versions) are removed."""
    from shared.output_lock import pid_alive

    removed, kept = [], []
    if not directory or not os.path.isdir(directory):
        return removed
    host = _host_tag()
    for entry in os.listdir(directory):
        if entry.startswith(".") and entry.endswith(".tmp"):
            path = os.path.join(directory, entry)
            owner = _TMP_OWNER.search(entry)
            if owner is not None and (owner.group(2) != host or (int(owner.group(1)) != os.getpid()
                                                                 and pid_alive(int(owner.group(1))))):
                kept.append(path)
                continue
            try:
                os.unlink(path)
                removed.append(path)
            except OSError:
                pass
    if removed:
        logger.info("Removed %d orphan temporary file(s) of an interrupted checkpoint write: %s",
                    len(removed), ", ".join(sorted(removed)))
    if kept:
        logger.warning("Kept %d temporary file(s) of a process that is still running or runs on another "
                       "machine: %s", len(kept), ", ".join(sorted(kept)))
    return removed
