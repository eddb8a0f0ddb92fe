"""Output files written whole or not at all.

detectron2's ``COCOEvaluator`` / ``LVISEvaluator`` stream ``instances_predictions.pth`` and
``coco_instances_results.json`` into the target file: an ``--eval-only`` that cannot finish writing (disk
full, killed) leaves the previous predictions truncated and unreadable. :func:`atomic_open` gives a file
object whose content replaces the target only when the ``with`` block ends without an error
(:func:`~shared.engine.checkpoint.atomic_write_bytes`: temporary file beside it, fsync, rename);
:class:`AtomicWritesPathManager` routes a ``PathManager``'s write modes through it.
:mod:`shared.compat` installs it in detectron2's COCO and LVIS evaluators; the toolkit's own evaluators call
:func:`atomic_open` directly.
"""
from __future__ import annotations

import io
import os
from typing import Any, Union

__all__ = ["AtomicWritesPathManager", "atomic_open"]


class _AtomicFile:
    """``with atomic_open(path, "w") as f: ...``: ``f`` is an in-memory file, written to ``path`` on
    success."""

    def __init__(self, path: Union[str, os.PathLike], mode: str, encoding: str) -> None:
        if "a" in mode or "+" in mode or "r" in mode:
            raise ValueError(f"atomic_open writes whole files: mode {mode!r} is not supported")
        self.path = os.fspath(path)
        self._binary = "b" in mode
        self._encoding = encoding
        self._buffer: Union[io.BytesIO, io.StringIO] = io.BytesIO() if self._binary else io.StringIO()

    def __enter__(self) -> Union[io.BytesIO, io.StringIO]:
        return self._buffer

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            from shared.engine.checkpoint import atomic_write_bytes

            value = self._buffer.getvalue()
            atomic_write_bytes(self.path, value if self._binary else value.encode(self._encoding))
        self._buffer.close()


def atomic_open(path: Union[str, os.PathLike], mode: str = "w", encoding: str = "utf-8") -> Any:
    """A context manager yielding a file (``"w"``: text, ``"wb"``: bytes) whose content becomes ``path`` at
    once when the block ends without an error; on an error ``path`` keeps its previous content."""
    return _AtomicFile(path, mode, encoding)


class AtomicWritesPathManager:
    """A ``PathManager`` whose ``open`` in a write mode (``"w"``, ``"wb"``) is :func:`atomic_open` on local
    paths; everything else is the wrapped manager's."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def open(self, path: str, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        local = "://" not in str(path) or str(path).startswith("file://")
        if local and mode in ("w", "wb"):
            return atomic_open(str(path).replace("file://", "", 1), mode)
        return self._inner.open(path, mode, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
