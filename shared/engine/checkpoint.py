"""Checkpoints that are never half-written.

fvcore's (and so detectron2's and fastreid's) ``Checkpointer.save`` streams ``torch.save`` straight into
``<name>.pth`` and then overwrites ``last_checkpoint``; a crash or a full disk in between leaves a
truncated file that ``resume_or_load`` will then try to load. :class:`AtomicCheckpointMixin` writes
both to a temporary file in the same directory, flushes it to disk and renames it over the target
(``os.replace`` is atomic on POSIX), so the previous checkpoint stays valid until the new one is complete.
"""
from __future__ import annotations

import io
import os
import tempfile
from typing import Any

import torch
from detectron2.checkpoint import DetectionCheckpointer


def atomic_write_bytes(path: str, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically (temp file in the same directory + fsync + rename)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
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
    """Detectron2's ``DetectionCheckpointer`` with atomic saves (used by every detectron2 trainer here)."""
