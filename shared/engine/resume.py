"""Deterministic resume: a run killed and resumed ends where the uninterrupted run ends.

detectron2, FastReID and pytorch-metric-learning restore the model, optimizer, scheduler and iteration on
``--resume`` but restart the training sampler from the beginning of its stream and keep whatever RNG
state the new process has. Here two more things go into every checkpoint (under ``"resume"``):

* **every RNG state**: Python ``random``, numpy's global generator, torch's CPU generator and, when CUDA is
  present, every CUDA generator (:func:`capture_rng_state` / :func:`restore_rng_state`);
* **the model's private generators**: any ``torch.Generator`` a submodule keeps as an attribute (DAS's
  producer draws from one), by module path;
* **the sampler position**: the training loader's index (or batch) sampler is wrapped in a
  :class:`ResumableSampler`, which counts the items it has handed out and, on resume, rebuilds the same
  stream from the sampler's seed and skips that many items *without loading any image* (a skip of 10^6
  indices takes about a second). The sampler's own seed is saved too, so a run with ``SEED -1`` resumes
  with the sampler seed it started with.

The wrapper also runs the wrapped sampler with its own private RNG state (swapped in around each draw):
FastReID's identity samplers draw from numpy's *global* generator, interleaved with the augmentations; in
their own sandbox their stream depends only on their seed, which is what makes the skip exact.

:class:`~shared.engine.checkpoint.AtomicCheckpointing` (the trainer mixin of every project) and
:class:`~shared.engine.trainer.GenericTrainer` install all of this: nothing to do in a project.

Limits (docs/reliability.md): bit-identical resume needs ``DATALOADER.NUM_WORKERS 0`` (with worker
processes the sampler runs ahead of training, in the workers for detectron2's loaders, and each worker's
augmentation seed is drawn anew, so the sample order restarts and a warning says so); detectron2's
aspect-ratio grouping keeps the images of the not-yet-full orientation bucket in memory -- they are not
in the checkpoint, so with images of both orientations the resumed run skips them; a mapper that returns
``None`` makes detectron2's ``MapDataset`` retry with its own RNG, which is not saved. CUDA kernels are not
bit-deterministic in general, so the guarantee is for the CPU. The position is exact for the infinite
training samplers detectron2, FastReID and the projects use; a finite sampler re-iterated per epoch
resumes within its first pass only.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import random
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

__all__ = ["ResumableSampler", "TrainingResumeState", "capture_rng_state", "log_resume_exactness",
           "make_loader_resumable", "preserve_rng", "restore_rng_state", "resume_exactness"]

logger = logging.getLogger(__name__)

_SEED_ATTRS = ("_seed", "seed")  # detectron2/fastreid samplers keep ``_seed``, DAS's P×K sampler ``seed``


def capture_rng_state() -> Dict[str, Any]:
    """Python, numpy, torch CPU (and CUDA) generator states, in a form ``torch.load(weights_only=True)``
    reads."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: Dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                  float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def preserve_rng() -> Iterator[None]:
    """Run a block without changing any global RNG state (the states are restored when it ends)."""
    saved = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(saved)


class _RNGSandbox:
    """Private Python/numpy/torch global RNG states, swapped in with :meth:`active`."""

    def __init__(self, seed: int) -> None:
        seed = int(seed) % (2 ** 32)
        self._py = random.Random(seed).getstate()
        self._np = np.random.RandomState(seed).get_state()
        gen = torch.Generator()
        gen.manual_seed(seed)
        self._torch = gen.get_state()

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        outer: Tuple[Any, Any, torch.Tensor] = (random.getstate(), np.random.get_state(),
                                                torch.get_rng_state())
        random.setstate(self._py)
        np.random.set_state(self._np)
        torch.set_rng_state(self._torch)
        try:
            yield
        finally:
            self._py, self._np, self._torch = random.getstate(), np.random.get_state(), torch.get_rng_state()
            random.setstate(outer[0])
            np.random.set_state(outer[1])
            torch.set_rng_state(outer[2])


class ResumableSampler(torch.utils.data.Sampler):
    """Wrap an (infinite) index or batch sampler: count what it yields, fast-forward to a saved count.

    ``state_dict()`` = ``{"consumed": items yielded, "seed": the sampler's seed}``; after
    ``load_state_dict`` the next iteration rebuilds the wrapped stream and skips ``consumed`` items before
    yielding. The wrapped sampler draws in a private RNG sandbox seeded from the sampler's seed (see module
    doc), ``chunk_size`` items at a time.
    """

    #: items drawn from the wrapped sampler per RNG-sandbox activation
    chunk_size: int = 256

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler
        self.consumed = 0
        self._skip = 0
        self._started = False
        self._sandbox: Optional[_RNGSandbox] = None

    def _seed(self) -> Optional[int]:
        for attr in _SEED_ATTRS:
            value = getattr(self.sampler, attr, None)
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                return int(value)
        return None

    def __iter__(self):
        self._started = True
        if self._sandbox is None:  # one per wrapper: a finite sampler iterated again draws a new order
            self._sandbox = _RNGSandbox(self._seed() or 0)
        sandbox = self._sandbox
        with sandbox.active():
            stream = iter(self.sampler)
            for _ in range(self._skip):
                next(stream)
        self.consumed, self._skip = self._skip, 0
        while True:
            # draw ahead in chunks: swapping numpy's global state costs ~0.1 ms; once per chunk, not per item;
            # the stream depends only on the seed, so items drawn ahead are regenerated identically on resume
            with sandbox.active():
                chunk = list(itertools.islice(stream, self.chunk_size))
            for item in chunk:
                self.consumed += 1
                yield item
            if len(chunk) < self.chunk_size:
                return

    def __len__(self) -> int:
        return len(self.sampler)

    def state_dict(self) -> Dict[str, Any]:
        return {"consumed": int(self.consumed), "seed": self._seed()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if self._started:
            logger.warning("the training sampler has already started; its saved position is ignored")
            return
        seed = state.get("seed")
        if seed is not None:
            for attr in _SEED_ATTRS:
                if isinstance(getattr(self.sampler, attr, None), (int, np.integer)):
                    setattr(self.sampler, attr, int(seed))
                    break
        self._skip = int(state["consumed"])


def _find_sampler_slot(obj: Any, depth: int = 0) -> Optional[Tuple[Any, str, Any]]:
    """(owner, attribute, DataLoader) of the sampler that feeds a training loader, or None."""
    from detectron2.data.common import ToIterableDataset
    from torch.utils.data import BatchSampler, DataLoader, IterableDataset

    if obj is None or depth > 8:
        return None
    if isinstance(obj, DataLoader):
        if isinstance(obj.dataset, ToIterableDataset):  # detectron2: the sampler runs inside the dataset
            return obj.dataset, "sampler", obj
        if isinstance(obj.dataset, IterableDataset):
            return None
        if isinstance(obj.batch_sampler, BatchSampler):  # FastReID, torch's own batching: wrap the indices
            return obj.batch_sampler, "sampler", obj
        if obj.batch_sampler is not None:  # a custom batch sampler (DAS's P×K): wrap the batches
            return obj, "batch_sampler", obj
        return obj, "sampler", obj
    for attr in ("dataset", "_dataset", "data_loader"):  # AspectRatioGroupedDataset, MapDataset
        child = getattr(obj, attr, None)
        if child is not None and child is not obj:
            found = _find_sampler_slot(child, depth + 1)
            if found is not None:
                return found
    return None


def make_loader_resumable(loader: Any) -> Tuple[Optional[ResumableSampler], int]:
    """Wrap the sampler inside ``loader`` (detectron2, FastReID or plain torch ``DataLoader`` layouts) in a
    :class:`ResumableSampler`, in place; returns it (None if the layout is unknown) and the worker count."""
    slot = _find_sampler_slot(loader)
    if slot is None:
        logger.warning("training loader %s: no sampler found; --resume restarts its order",
                       type(loader).__name__)
        return None, 0
    owner, attr, data_loader = slot
    current = getattr(owner, attr)
    if isinstance(current, ResumableSampler):
        return current, data_loader.num_workers
    wrapped = ResumableSampler(current)
    object.__setattr__(owner, attr, wrapped)  # DataLoader forbids setting its samplers after __init__
    if data_loader.generator is None:
        # each new iterator draws its workers' base seed from loader.generator, else from the global RNG;
        # detectron2's aspect-ratio grouping creates its iterator at the first batch, i.e. after a resume
        # restored the RNG states, which would shift the global stream by one draw
        gen = torch.Generator()
        gen.manual_seed((wrapped._seed() or 0) % (2 ** 63))
        data_loader.generator = gen
    return wrapped, data_loader.num_workers


def _module_generators(model: Optional[torch.nn.Module]) -> Dict[str, Tuple[torch.nn.Module, str, Any]]:
    """``"<module path>:<attribute>" -> (module, attribute, generator)`` for every submodule attribute that
    holds a ``torch.Generator``."""
    found: Dict[str, Tuple[torch.nn.Module, str, Any]] = {}
    if model is None:
        return found
    model = getattr(model, "module", model)  # DDP
    for path, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, torch.Generator):
                found[f"{path}:{attr}"] = (module, attr, value)
    return found


def capture_module_generators(model: Optional[torch.nn.Module]) -> Dict[str, Any]:
    return {key: [str(gen.device), gen.get_state()] for key, (_, _, gen) in _module_generators(model).items()}


def restore_module_generators(model: Optional[torch.nn.Module], saved: Dict[str, Any]) -> None:
    if model is None:
        return
    model = getattr(model, "module", model)
    modules = dict(model.named_modules())
    for key, (device, state) in saved.items():
        path, attr = key.rsplit(":", 1)
        module = modules.get(path)
        if module is None:
            logger.warning("resume: no module %r for the saved generator %s", path, key)
            continue
        gen = getattr(module, attr, None)
        if not isinstance(gen, torch.Generator) or str(gen.device) != device:
            gen = torch.Generator(device=device)  # created lazily by the module: create it now
            setattr(module, attr, gen)
        gen.set_state(state)


def resume_exactness(has_sampler: bool, num_workers: int, device: str) -> List[str]:
    """Why a ``--resume`` of this run would not continue bit-identically (empty: it would)."""
    reasons = []
    if not has_sampler:
        reasons.append("the training loader's sampler is of an unknown layout (its order restarts)")
    if num_workers:
        reasons.append(f"DATALOADER.NUM_WORKERS={num_workers} > 0 (worker processes run the sampler ahead "
                       "and draw their own augmentation seeds; the sample order restarts)")
    if not device.startswith("cpu"):
        reasons.append(f"MODEL.DEVICE={device} (CUDA kernels are not bit-deterministic in general)")
    return reasons


def log_resume_exactness(has_sampler: bool, num_workers: int, device: str) -> None:
    """One line in the log (``log.txt``) when training starts: can a ``--resume`` of this run be exact?"""
    reasons = resume_exactness(has_sampler, num_workers, device)
    if reasons:
        logger.warning("resume exactness: a --resume of this run will NOT be bit-identical to an "
                       "uninterrupted run: %s. Exact resume needs the CPU and DATALOADER.NUM_WORKERS 0",
                       "; ".join(reasons))
    else:
        logger.info("resume exactness: a --resume of this run continues bit-identically (CPU, "
                    "DATALOADER.NUM_WORKERS 0)")


class TrainingResumeState:
    """What a trainer adds to each checkpoint for deterministic resume: RNG states (global and the model's
    own generators) + sampler position."""

    def __init__(self, sampler: Optional[ResumableSampler], num_workers: int,
                 model: Optional[torch.nn.Module] = None) -> None:
        self.sampler = sampler
        self.num_workers = num_workers
        self.model = model

    @classmethod
    def attach(cls, trainer: Any) -> "TrainingResumeState":
        """Make the loader of ``trainer._trainer`` (detectron2/FastReID ``SimpleTrainer``) resumable."""
        inner = getattr(trainer, "_trainer", None)
        loader = getattr(inner, "data_loader", None)
        sampler, workers = make_loader_resumable(loader) if loader is not None else (None, 0)
        if sampler is not None and workers == 0 and hasattr(inner, "_data_loader_iter"):
            # the trainer made its iterator eagerly; a fresh one reads the wrapped sampler (no workers: cheap)
            inner._data_loader_iter = iter(loader)
        cfg = getattr(trainer, "cfg", None)
        device = str(cfg.MODEL.DEVICE) if cfg is not None and "MODEL" in cfg else "cpu"
        log_resume_exactness(sampler is not None, workers, device)
        return cls(sampler, workers, getattr(inner, "model", None))

    def state_dict(self) -> Dict[str, Any]:
        return {"rng": capture_rng_state(), "module_generators": capture_module_generators(self.model),
                "sampler": self.sampler.state_dict() if self.sampler is not None else None,
                "num_workers": int(self.num_workers)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        restore_rng_state(state["rng"])
        restore_module_generators(self.model, state.get("module_generators", {}))
        saved = state.get("sampler")
        if self.sampler is None or saved is None:
            logger.warning("resume: the training sampler's position is not restored (no resumable sampler)")
            return
        if self.num_workers or state.get("num_workers"):
            logger.warning("resume with DATALOADER.NUM_WORKERS > 0: RNG states are restored but the sample "
                           "order restarts (bit-identical resume needs NUM_WORKERS 0)")
            return
        self.sampler.load_state_dict(saved)
        logger.info("resume: training sampler fast-forwarded by %d items", saved["consumed"])
