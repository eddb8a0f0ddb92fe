"""Published weights converted into the layouts our models load, cached beside the published file.

``weights://<name>#<layout>`` resolves to ``<cache>/<name>/<stem>.<layout><suffix>``, written once by the
converter registered for ``(entry.format, layout)`` (:func:`register_converter`) and kept with a
``.sha256`` sidecar (the checkpoint format of :mod:`shared.engine.checkpoint`, checked again when loaded).
Converters are pure functions from the published object (what :func:`read_published` returns) to the object
to save, so tests can feed them state dicts with the official key layout.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
from typing import Any, Callable, Dict, Tuple

import torch

from shared.weights.catalog import WeightsEntry, get_entry
from shared.weights.store import cached_file, fetch, file_lock

__all__ = ["CONVERTERS", "PREFIX", "convert", "converted_file", "is_catalog_uri", "parse_uri",
           "read_published", "register_converter", "resolve"]

logger = logging.getLogger(__name__)

#: URI scheme of catalog entries in config values (detectron2 already uses "catalog://" for its model zoo)
PREFIX = "weights://"

Converter = Callable[[Any], Any]
#: (entry format, layout) -> (converter, suffix of the converted file: ".pth" is torch.save, ".pkl" pickle)
CONVERTERS: Dict[Tuple[str, str], Tuple[Converter, str]] = {}


def register_converter(fmt: str, layout: str, suffix: str = ".pth") -> Callable[[Converter], Converter]:
    """Register ``fn(published_object) -> object_to_save``, the converter of ``fmt`` files into ``layout``."""
    if suffix not in (".pth", ".pkl"):
        raise ValueError(f"converted files are .pth or .pkl, not {suffix!r}")

    def decorator(fn: Converter) -> Converter:
        CONVERTERS[(fmt, layout)] = (fn, suffix)
        return fn
    return decorator


def is_catalog_uri(value: Any) -> bool:
    """True for strings of the form ``weights://<name>[#<layout>]``."""
    return isinstance(value, str) and value.startswith(PREFIX)


def parse_uri(uri: str) -> Tuple[str, str]:
    """``weights://<name>#<layout>`` -> ``(name, layout)`` (layout ``""`` for the published file)."""
    if not is_catalog_uri(uri):
        raise ValueError(f"{uri!r} is not a {PREFIX}<name>[#<layout>] URI")
    name, _, layout = uri[len(PREFIX):].partition("#")
    return name, layout


def read_published(entry: WeightsEntry, path: str) -> Any:
    """Read a published file without running code from it: TorchScript archives with ``torch.jit.load``
    (their ``state_dict``), ``.pkl`` with the restricted unpickler, ``.safetensors`` with safetensors,
    everything else with ``torch.load(weights_only=True)``."""
    from shared.engine.checkpoint import safe_pickle_load

    if entry.format.startswith("torchscript"):
        return dict(torch.jit.load(path, map_location="cpu").state_dict())
    if path.endswith(".pkl"):
        return safe_pickle_load(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    return torch.load(path, map_location="cpu", weights_only=True)


def converted_file(entry: WeightsEntry, layout: str) -> str:
    """Where ``entry`` converted into ``layout`` is cached."""
    _, suffix = _converter(entry, layout)
    stem = os.path.splitext(entry.filename)[0]
    return os.path.join(os.path.dirname(cached_file(entry)), f"{stem}.{layout}{suffix}")


def _converter(entry: WeightsEntry, layout: str) -> Tuple[Converter, str]:
    try:
        return CONVERTERS[(entry.format, layout)]
    except KeyError:
        known = sorted(lay for fmt, lay in CONVERTERS if fmt == entry.format)
        raise KeyError(f"no converter of {entry.format!r} files ({entry.name}) into layout {layout!r}; "
                       f"layouts for this format: {known or 'none'}") from None


def _serialise(obj: Any, suffix: str) -> bytes:
    if suffix == ".pkl":
        return pickle.dumps(obj, protocol=4)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def convert(entry: WeightsEntry, layout: str) -> str:
    """The cached conversion of ``entry`` into ``layout``, written on first use (atomically, with a sha256
    sidecar) from the verified published file."""
    from shared.engine.checkpoint import SHA256_SUFFIX, _check_file, atomic_write_bytes

    fn, suffix = _converter(entry, layout)
    dest = converted_file(entry, layout)
    source = fetch(entry.name)
    with file_lock(dest + ".lock"):
        if os.path.isfile(dest) and os.path.isfile(dest + SHA256_SUFFIX):
            try:
                _check_file(dest)
                return dest
            except Exception as err:  # a damaged conversion is rebuilt from the verified source
                logger.warning("Rebuilding the converted weights %s: %s", dest, err)
        payload = _serialise(fn(read_published(entry, source)), suffix)
        atomic_write_bytes(dest, payload)
        atomic_write_bytes(dest + SHA256_SUFFIX,
                           f"{hashlib.sha256(payload).hexdigest()}  {os.path.basename(dest)}\n".encode())
        logger.info("Converted %s into the %s layout: %s", entry.name, layout, dest)
    return dest


def resolve(value: str) -> str:
    """A local path for a config value naming weights: plain paths (and ``""``) are returned unchanged,
    ``weights://<name>`` is the verified published file, ``weights://<name>#<layout>`` its conversion."""
    if not is_catalog_uri(value):
        return value
    name, layout = parse_uri(value)
    entry = get_entry(name)
    return convert(entry, layout) if layout else fetch(name)
