"""The weights catalog on the command line.

    python -m shared.weights list                       # every entry: name, size, sha256, where it comes from
    python -m shared.weights fetch NAME [NAME ...]      # download + verify into the cache
    python -m shared.weights fetch --config PRESET.yaml # every weights:// value of a preset (and its _BASE_s)
    python -m shared.weights fetch --all                # the whole catalog
    python -m shared.weights path NAME                  # where the file belongs in the cache (offline copies)

Converted layouts (``weights://<name>#<layout>``) named by a preset are built too, so a cache filled on a
machine with internet can be copied to an offline cluster as it is. ``make weights [CONFIG=...]`` runs
``fetch``.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Iterator, List, Optional, Set

import yaml

from shared.weights import CATALOG, cache_dir, cached_file, get_entry, is_catalog_uri, resolve


def _catalog_values(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _catalog_values(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _catalog_values(value)
    elif is_catalog_uri(node):
        yield node


def preset_uris(config_file: str, _seen: Optional[Set[str]] = None) -> List[str]:
    """Every ``weights://`` value of a yaml preset and of its ``_BASE_`` files (``yaml.safe_load``)."""
    seen = set() if _seen is None else _seen
    path = os.path.abspath(config_file)
    if path in seen:
        raise ValueError(f"_BASE_ cycle: {config_file} includes itself")
    seen.add(path)
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{config_file} is not a yaml mapping")
    uris: List[str] = []
    bases = data.pop("_BASE_", None) or []
    for base in [bases] if isinstance(bases, str) else bases:
        uris += preset_uris(os.path.join(os.path.dirname(path), os.path.expanduser(base)), seen)
    return uris + [u for u in _catalog_values(data) if u not in uris]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.weights", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the catalog")
    fetch_p = sub.add_parser("fetch", help="download and verify into the cache")
    fetch_p.add_argument("names", nargs="*", help="catalog entries or weights:// URIs")
    fetch_p.add_argument("--config", action="append", default=[], help="a preset yaml (repeatable)")
    fetch_p.add_argument("--all", action="store_true", help="every catalog entry")
    path_p = sub.add_parser("path", help="print where an entry's file belongs in the cache")
    path_p.add_argument("name")
    args = parser.parse_args(argv)

    if args.command == "list":
        print(f"cache: {cache_dir()}")
        for name, entry in sorted(CATALOG.items()):
            size = f"{entry.size / 2**20:.1f} MiB" if entry.size else "size ?"
            print(f"{name}\n    {entry.urls[0]}\n    {size}, sha256 {entry.digest_text}\n"
                  f"    from: {entry.source}")
        return 0
    if args.command == "path":
        print(cached_file(get_entry(args.name)))
        return 0
    uris = [n if is_catalog_uri(n) else f"weights://{n}" for n in args.names]
    for config_file in args.config:
        found = preset_uris(config_file)
        if not found:
            print(f"{config_file}: names no catalog weights (a from-scratch preset)")
        uris += found
    if args.all:
        uris += [f"weights://{name}" for name in sorted(CATALOG)]
    if not uris:
        parser.error("name entries, --config PRESET or --all")
    for uri in dict.fromkeys(uris):
        print(f"{uri} -> {resolve(uri)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
