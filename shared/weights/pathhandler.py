"""``weights://`` in detectron2's, fvcore's and FastReID's PathManager, so ``MODEL.WEIGHTS: weights://...``
works wherever a path goes through them (``DetectionCheckpointer``, ``DefaultPredictor``), as
``detectron2://`` does for detectron2's model zoo."""
from __future__ import annotations

from typing import Any, List

from iopath.common.file_io import PathHandler

from shared.weights.convert import PREFIX, resolve

__all__ = ["CatalogPathHandler", "register_path_handlers"]


class CatalogPathHandler(PathHandler):
    """Resolves ``weights://<name>[#<layout>]`` to the verified, cached (and converted) local file."""

    def _get_supported_prefixes(self) -> List[str]:
        return [PREFIX]

    def _get_local_path(self, path: str, force: bool = False, **kwargs: Any) -> str:
        self._check_kwargs(kwargs)
        return resolve(path)

    def _open(self, path: str, mode: str = "r", buffering: int = -1, **kwargs: Any):
        self._check_kwargs(kwargs)
        if any(flag in mode for flag in "wax+"):
            raise ValueError(f"{path} is read-only (a catalog entry), cannot open it with mode {mode!r}")
        return open(resolve(path), mode, buffering=buffering)

    def _exists(self, path: str, **kwargs: Any) -> bool:
        self._check_kwargs(kwargs)
        from shared.weights.catalog import CATALOG
        from shared.weights.convert import parse_uri

        return parse_uri(path)[0] in CATALOG

    def _isfile(self, path: str, **kwargs: Any) -> bool:
        return self._exists(path, **kwargs)


def _managers() -> List[Any]:
    managers = []
    try:
        from detectron2.utils.file_io import PathManager as d2
        managers.append(d2)
    except ImportError:
        pass
    try:
        from fvcore.common.file_io import PathManager as fv
        managers.append(fv)
    except ImportError:
        pass
    return managers


def register_path_handlers() -> None:
    """Register :class:`CatalogPathHandler` with every PathManager present (idempotent)."""
    seen = set()
    for manager in _managers():
        if id(manager) in seen:
            continue
        seen.add(id(manager))
        handlers = getattr(manager, "_path_handlers", None)
        if handlers is not None and PREFIX in handlers:
            continue
        manager.register_handler(CatalogPathHandler())
