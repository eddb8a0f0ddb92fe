"""Where datasets live: one environment variable per framework, like detectron2 and fastreid.

* ``DETECTRON2_DATASETS`` (default ``./datasets``): detection, LVIS, copy detection, metric learning.
* ``FASTREID_DATASETS`` (default ``./datasets``): person / vehicle re-identification.
"""
from __future__ import annotations

import errno
import os

DETECTRON2_ENV = "DETECTRON2_DATASETS"
FASTREID_ENV = "FASTREID_DATASETS"


def dataset_root(env: str = DETECTRON2_ENV) -> str:
    """The dataset root named by environment variable ``env`` (``./datasets`` when unset)."""
    return os.path.expanduser(os.environ.get(env, "datasets"))


def require_path(path: str, dataset: str, env: str = DETECTRON2_ENV, hint: str = "") -> str:
    """Return ``path`` if it exists; otherwise raise ``FileNotFoundError`` naming the dataset, the missing
    path and the environment variable that sets the root (instead of failing later inside a loader). A path
    through a symbolic link that loops (or more than the system's 40 links deep) is a ``FileNotFoundError``
    saying so, not "does not exist"."""
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise FileNotFoundError(
                f"dataset {dataset!r}: {path!r} cannot be opened: a symbolic link on the way loops "
                f"({err.strerror}); fix the link (ls -l shows where each part of the path points)"
            ) from err
    if not os.path.exists(path):
        root = os.environ.get(env)
        where = f"${env}={root!r}" if root is not None else f"${env} is unset, so the root is './datasets'"
        extra = f" {hint}" if hint else ""
        raise FileNotFoundError(
            f"dataset {dataset!r}: expected {path!r}, which does not exist ({where}).{extra}"
        )
    return path
