"""The published weight files the official presets start from, one :class:`WeightsEntry` each.

A preset names an entry as ``weights://<name>`` (the file as published) or ``weights://<name>#<layout>``
(converted into one of our layouts, :mod:`shared.weights.convert`). Each entry carries the official URL(s),
the file's SHA-256 (or, where only that is published, the digest prefix in its file name, as torch.hub's
``check_hash`` uses it), its size and the place in the official code that downloads it.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

__all__ = ["CATALOG", "ENV_EXTRA_CATALOG", "WeightsEntry", "entry_for_file", "get_entry", "load_entries",
           "register_entry"]

#: environment variable: JSON files (separated by os.pathsep) with more entries, e.g. a lab's own backbones
ENV_EXTRA_CATALOG = "TINYVISION_WEIGHTS_CATALOG"

_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass(frozen=True)
class WeightsEntry:
    """One published weights file.

    Attributes:
        name: catalog key (``<publisher>/<file stem>``), used in ``weights://<name>`` URIs.
        urls: where the official code downloads it, the official URL first (mirrors after it).
        sha256: the full hex SHA-256 of the published file, when known.
        hash_prefix: the leading hex digits of the SHA-256 that the publisher put in the file name
            (torch.hub's convention), used only when no full digest is known.
        size: the file's size in bytes, when known (a download of another size is refused early).
        format: how the file is read and which converters apply (e.g. ``"torchvision-resnet"``).
        source: where the official run gets this file (repository, file and line).
        description: what the file is (architecture, training data).
    """

    name: str
    urls: Tuple[str, ...]
    sha256: Optional[str]
    hash_prefix: Optional[str]
    size: Optional[int]
    format: str
    source: str
    description: str = ""
    aliases: Tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError(f"weights entry {self.name!r} has no URL")
        for digest, what in ((self.sha256, "sha256"), (self.hash_prefix, "hash_prefix")):
            if digest is not None and not _HEX.match(digest):
                raise ValueError(f"weights entry {self.name!r}: {what} {digest!r} is not lower-case hex")
        if self.sha256 is not None and len(self.sha256) != 64:
            raise ValueError(f"weights entry {self.name!r}: sha256 must have 64 hex digits")
        if self.sha256 is None and self.hash_prefix is None:
            raise ValueError(f"weights entry {self.name!r} has neither a sha256 nor a published hash prefix: "
                             "a download could not be verified")
        if self.sha256 is not None and self.hash_prefix is not None \
                and not self.sha256.startswith(self.hash_prefix):
            raise ValueError(f"weights entry {self.name!r}: hash_prefix {self.hash_prefix} is not a prefix "
                             f"of sha256 {self.sha256}")

    @property
    def filename(self) -> str:
        """The published file name (the last component of the first URL)."""
        return os.path.basename(self.urls[0].split("?")[0])

    @property
    def digest_text(self) -> str:
        """The digest a user should expect, for messages: the full sha256, or ``<prefix>…`` when only that is
        published."""
        return self.sha256 if self.sha256 else f"{self.hash_prefix}… (prefix published in the file name)"


#: every catalog entry by name
CATALOG: Dict[str, WeightsEntry] = {}


def register_entry(entry: WeightsEntry) -> WeightsEntry:
    """Add ``entry`` to :data:`CATALOG` (a name may be registered once)."""
    if entry.name in CATALOG and CATALOG[entry.name] != entry:
        raise ValueError(f"weights entry {entry.name!r} is already registered with other values")
    CATALOG[entry.name] = entry
    return entry


def get_entry(name: str) -> WeightsEntry:
    """The entry called ``name``; an unknown name is a ``KeyError`` listing the close ones."""
    if name in CATALOG:
        return CATALOG[name]
    import difflib

    close = difflib.get_close_matches(name, list(CATALOG), n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise KeyError(f"no weights entry {name!r} in the catalog (python -m shared.weights list){hint}")


def entry_for_file(path: str, sha256: Optional[str] = None) -> Optional[WeightsEntry]:
    """The catalog entry a local file claims to be, by its file name (or by ``sha256`` when given), or None.

    Used to check files the toolkit did not write against the published digest.
    """
    if sha256 is not None:
        for entry in CATALOG.values():
            if entry.sha256 == sha256:
                return entry
    base = os.path.basename(path)
    for entry in CATALOG.values():
        if base == entry.filename or base in entry.aliases:
            return entry
    return None


def load_entries(path: str) -> None:
    """Register the entries of a JSON file: a list of objects with :class:`WeightsEntry`'s fields. An entry
    of the same name as a built-in one replaces it, with a warning (a lab's own copy of a published file)."""
    try:
        with open(path) as f:
            records = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read the weights catalog file {path} (${ENV_EXTRA_CATALOG}): {err}") \
            from err
    if not isinstance(records, list):
        raise ValueError(f"{path}: a weights catalog file holds a JSON list of entries, "
                         f"not {type(records).__name__}")
    for i, record in enumerate(records):
        try:
            entry = WeightsEntry(**dict(record, urls=tuple(record["urls"]),
                                        aliases=tuple(record.get("aliases", ()))))
        except (TypeError, KeyError, ValueError) as err:
            raise ValueError(f"{path}: entry {i} is not a valid weights entry: {err}") from err
        if entry.name in CATALOG and CATALOG[entry.name] != entry:
            logging.getLogger(__name__).warning("%s replaces the catalog entry %s (%s -> %s)", path,
                                                entry.name, CATALOG[entry.name].urls[0], entry.urls[0])
        CATALOG[entry.name] = entry


# ------------------------------------------------------------------------------------------------- entries
# torchvision's ImageNet ResNet-50 (IMAGENET1K_V1). mmdetection's ``torchvision://resnet50`` (the official
# SimD and IIF configs: ``init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')``) resolves to
# torchvision's URL for these weights; the digest below is that of the published file (its first 8 hex
# digits are in the file name).
register_entry(WeightsEntry(
    name="torchvision/resnet50-0676ba61",
    urls=("https://download.pytorch.org/models/resnet50-0676ba61.pth",),
    sha256="0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a",
    hash_prefix="0676ba61",
    size=102530333,
    format="torchvision-resnet",
    source="mmdetection mmdet/models/backbones/resnet.py (init_cfg torchvision://resnet50), resolved by mmcv "
           "through torchvision.models ResNet50_Weights.IMAGENET1K_V1",
    description="ResNet-50, ImageNet-1k, torchvision IMAGENET1K_V1 weights",
))


for _extra in filter(None, os.environ.get(ENV_EXTRA_CATALOG, "").split(os.pathsep)):
    load_entries(_extra)
