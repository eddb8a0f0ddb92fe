"""Which weights a training run starts from: refused when there are none and random initialisation was not
asked for (``MODEL.FROM_SCRATCH``), and said in the first log lines.

A training run starts from the files its config names under the keys in :data:`INITIAL_WEIGHTS_KEYS` (those
of them that the config has). When every one of them is empty, the run would start from random weights; that
is an error unless ``MODEL.FROM_SCRATCH`` is True (the synthetic demo presets and the official runs that
train from scratch, e.g. IIF's CIFAR-LT, set it). ``--resume`` from a checkpoint in ``OUTPUT_DIR`` needs no
initial weights.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional

from shared.weights.catalog import entry_for_file, get_entry
from shared.weights.convert import is_catalog_uri, parse_uri, resolve

__all__ = ["INITIAL_WEIGHTS_KEYS", "InitialWeightsError", "check_initial_weights", "describe_initial_weights",
           "initial_weights", "log_initial_weights"]

logger = logging.getLogger(__name__)

#: config keys that name the weights a part of a model starts from (a local path or a weights:// URI)
INITIAL_WEIGHTS_KEYS = (
    "MODEL.WEIGHTS",                     # the whole model (detectron2 checkpointer; SimD, IIF detection, DAS)
    "MODEL.BACKBONE.PRETRAIN_PATH",      # FastReID backbones, read when MODEL.BACKBONE.PRETRAIN is True
    "MODEL.EMBEDDING.BACKBONE_WEIGHTS",  # DAS embedding backbone
    "MODEL.RDCD.TEACHER_WEIGHTS",        # RDCD / SSCD teacher
    "MODEL.RDCD.STUDENT_WEIGHTS",        # RDCD student
    "MODEL.CLS.PRETRAINED",              # IIF classification backbone
)


class InitialWeightsError(ValueError):
    """A training run with no initial weights although ``MODEL.FROM_SCRATCH`` is False."""


def _get(cfg: Any, key: str) -> Optional[Any]:
    node = cfg
    for part in key.split("."):
        if not hasattr(node, part):
            return None
        node = getattr(node, part)
    return node


def initial_weights(cfg: Any) -> Dict[str, str]:
    """``{key: value}`` of the keys of :data:`INITIAL_WEIGHTS_KEYS` that ``cfg`` has (empty values included).

    FastReID's ``MODEL.BACKBONE.PRETRAIN_PATH`` counts only with ``MODEL.BACKBONE.PRETRAIN`` True; with
    ``PRETRAIN`` True and an empty path FastReID downloads its own file (``model_urls``), reported as
    ``"fastreid model_urls"``."""
    found: Dict[str, str] = {}
    for key in INITIAL_WEIGHTS_KEYS:
        value = _get(cfg, key)
        if value is None:
            continue
        if key == "MODEL.BACKBONE.PRETRAIN_PATH":
            if not _get(cfg, "MODEL.BACKBONE.PRETRAIN"):
                value = ""
            elif not value:
                value = "fastreid model_urls"
        found[key] = str(value)
    return found


def check_initial_weights(cfg: Any) -> None:
    """Raise :class:`InitialWeightsError` when every initial-weights key of ``cfg`` is empty and
    ``MODEL.FROM_SCRATCH`` is not True, naming the keys to set."""
    if bool(_get(cfg, "MODEL.FROM_SCRATCH")):
        return
    found = initial_weights(cfg)
    if found and not any(found.values()):
        keys = ", ".join(found)
        raise InitialWeightsError(
            f"this training run names no initial weights ({keys} are all empty) and would start from random "
            "weights. Set one of them (a file or weights://<entry>, `python -m shared.weights list`), or set "
            "MODEL.FROM_SCRATCH True to train from random initialisation on purpose")


def _digest_of(value: str) -> str:
    """``sha256 <prefix>`` of a weights:// entry or of a local file the catalog knows (else of the file)."""
    if is_catalog_uri(value):
        entry = get_entry(parse_uri(value)[0])
        return f"sha256 {(entry.sha256 or entry.hash_prefix)[:12]}"
    if os.path.isfile(value):
        entry = entry_for_file(value)
        if entry is not None:
            return f"catalog {entry.name}, sha256 {(entry.sha256 or entry.hash_prefix)[:12]}"
        from shared.engine.checkpoint import sha256_of_file

        return f"sha256 {sha256_of_file(value)[:12]}"
    return "not a local file"


def describe_initial_weights(cfg: Any, resolve_uris: bool = True) -> List[str]:
    """One line per initial-weights key of ``cfg``: the value, the local file it resolves to (weights://
    URIs are fetched when ``resolve_uris``) and its sha256 prefix, or that the part starts from random
    weights."""
    lines = []
    scratch = bool(_get(cfg, "MODEL.FROM_SCRATCH"))
    for key, value in initial_weights(cfg).items():
        if not value:
            why = " (random initialisation, MODEL.FROM_SCRATCH True)" if scratch else ""
            lines.append(f"{key}: none{why}")
        elif value == "fastreid model_urls" or ("://" in value and not is_catalog_uri(value)):
            lines.append(f"{key}: {value}")
        else:
            path = resolve(value) if resolve_uris else value
            where = f" -> {path}" if path != value else ""
            lines.append(f"{key}: {value}{where} ({_digest_of(value if is_catalog_uri(value) else path)})")
    return lines


def log_initial_weights(cfg: Any, log: Optional[logging.Logger] = None) -> None:
    """Log :func:`describe_initial_weights` (the loaders log the tensors loaded and left initialised)."""
    log = log or logger
    for line in describe_initial_weights(cfg):
        log.info("Initial weights: %s", line)
