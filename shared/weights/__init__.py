"""Published pretrained weights: the catalog the official presets name, and their download, verification,
caching and conversion (docs/install.md, "Pretrained weights").

A config value naming weights is a local path or ``weights://<name>[#<layout>]``; :func:`resolve` turns it
into a local file. ``python -m shared.weights`` lists the catalog and pre-fetches files for offline machines.
"""
from shared.weights import converters as _converters  # noqa: F401  (registers the converters)
from shared.weights.catalog import CATALOG, WeightsEntry, entry_for_file, get_entry, register_entry
from shared.weights.convert import (
    CONVERTERS,
    PREFIX,
    convert,
    converted_file,
    is_catalog_uri,
    parse_uri,
    read_published,
    register_converter,
    resolve,
)
from shared.weights.pathhandler import CatalogPathHandler, register_path_handlers
from shared.weights.store import (
    ENV_CACHE,
    ENV_MIRROR,
    ENV_OFFLINE,
    WeightsError,
    WeightsHashError,
    WeightsUnavailableError,
    cache_dir,
    cached_file,
    fetch,
    is_offline,
    verify_file,
)

register_path_handlers()

__all__ = [
    "CATALOG", "CONVERTERS", "CatalogPathHandler", "ENV_CACHE", "ENV_MIRROR", "ENV_OFFLINE", "PREFIX",
    "WeightsEntry", "WeightsError", "WeightsHashError", "WeightsUnavailableError", "cache_dir", "cached_file",
    "convert", "converted_file", "entry_for_file", "fetch", "get_entry", "is_catalog_uri", "is_offline",
    "parse_uri", "read_published", "register_converter", "register_entry", "register_path_handlers",
    "resolve", "verify_file",
]
