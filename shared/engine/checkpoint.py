"""Checkpoints that are never half-written, installed the same way in every trainer.

fvcore's (and so detectron2's and fastreid's) ``Checkpointer.save`` streams ``torch.save`` straight into
``<name>.pth`` and then overwrites ``last_checkpoint``; a crash or a full disk in between leaves a
truncated file that ``resume_or_load`` will then try to load. :class:`AtomicCheckpointMixin` writes
both to a temporary file in the same directory, flushes it to disk and renames it over the target
(``os.replace`` is atomic on POSIX), so the previous checkpoint stays valid until the new one is complete.

Trainers get it through one mixin, :class:`AtomicCheckpointing`: it turns the checkpointer the base trainer
built (detectron2's ``DetectionCheckpointer``, fastreid's ``Checkpointer``) into its atomic subclass before
the hooks capture it, and gives ``--eval-only`` the same checkpointer through ``build_checkpointer``.
"""
from __future__ import annotations

import io
import os
import tempfile
from typing import Any, Dict, Type

import torch
from detectron2.checkpoint import DetectionCheckpointer

__all__ = ["AtomicCheckpointMixin", "AtomicCheckpointing", "AtomicDetectionCheckpointer", "atomic_write_bytes",
           "make_atomic"]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically (temp file in the same directory + fsync + rename).

    The file gets the permissions an ordinary ``open(path, "wb")`` would give (0666 less the process
    umask), not ``mkstemp``'s private 0600, so a team on a shared cluster can read the checkpoints.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
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

    def save(self, name: str, **kwargs: Any) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info("Saving checkpoint to %s", save_file)
        buffer = io.BytesIO()
        torch.save(data, buffer)
        atomic_write_bytes(save_file, buffer.getvalue())
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        atomic_write_bytes(os.path.join(self.save_dir, "last_checkpoint"), last_filename_basename.encode())


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
        self.checkpointer = make_atomic(self.checkpointer)
        return super().build_hooks()

    @classmethod
    def build_checkpointer(cls, model: torch.nn.Module, cfg, **checkpointables: Any):
        """The checkpointer ``--eval-only`` loads ``MODEL.WEIGHTS`` with (and ``GenericTrainer`` trains with)."""
        return make_atomic(cls.checkpointer_cls(model, cfg.OUTPUT_DIR, **checkpointables))
