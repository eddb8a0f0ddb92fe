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
from shared.weights.initial import (
    INITIAL_WEIGHTS_KEYS,
    InitialWeightsError,
    check_initial_weights,
    describe_initial_weights,
    initial_weights,
    log_initial_weights,
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
    "CATALOG", "CONVERTERS", "CatalogPathHandler", "ENV_CACHE", "ENV_MIRROR", "ENV_OFFLINE",
    "INITIAL_WEIGHTS_KEYS", "InitialWeightsError", "PREFIX", "WeightsEntry", "WeightsError",
    "WeightsHashError", "WeightsUnavailableError", "cache_dir", "cached_file", "check_initial_weights",
    "convert", "converted_file", "describe_initial_weights", "entry_for_file", "fetch", "get_entry",
    "initial_weights", "is_catalog_uri", "is_offline", "log_initial_weights", "parse_uri", "read_published",
    "register_converter", "register_entry", "register_path_handlers", "resolve", "verify_file",
]
