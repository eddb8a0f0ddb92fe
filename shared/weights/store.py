"""Download, verify and cache published weight files, as torch.hub and detectron2's PathManager do.

* The cache is ``$TINYVISION_WEIGHTS_CACHE`` (default ``~/.cache/tinyvision/weights``); entry ``<name>`` is
  kept at ``<cache>/<name>/<published file name>``.
* A download goes to a temporary file beside its destination, is checked against the catalog's size and
  SHA-256 and only then renamed into place: a corrupted or truncated download is deleted and is an error
  naming the URL, the expected and the actual digest; nothing half-written is ever in the cache.
* A cached file is checked again (once per process and file version) before it is used.
* One process downloads, the others wait: an exclusive ``flock`` on ``<file>.lock`` in the cache, so the
  ranks of a ``torch.distributed`` job on one machine (or on machines sharing the cache folder) fetch a file
  once and then all read the cache.
* ``$TINYVISION_WEIGHTS_MIRROR`` (optional): a base URL tried before the official ones, serving
  ``<mirror>/<name>/<file name>`` (an in-house mirror for clusters; the tests use a loopback one).
* ``TINYVISION_OFFLINE=1``: never connect; a file that is not cached is an error that names the catalog
  key, the URL, the sha256 and the exact path to place the file at (``python -m shared.weights path NAME``).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import logging
import os
import urllib.error
from typing import Dict, Iterator, List, Optional, Tuple

from shared.weights.catalog import WeightsEntry, get_entry

__all__ = ["ENV_CACHE", "ENV_MIRROR", "ENV_OFFLINE", "WeightsError", "WeightsHashError",
           "WeightsUnavailableError", "cache_dir", "cached_file", "fetch", "file_lock", "is_offline",
           "verify_file"]

logger = logging.getLogger(__name__)

#: environment variable naming the cache folder
ENV_CACHE = "TINYVISION_WEIGHTS_CACHE"
#: environment variable that forbids downloads when set to 1/true/yes
ENV_OFFLINE = "TINYVISION_OFFLINE"
#: environment variable with a base URL tried before the official ones
ENV_MIRROR = "TINYVISION_WEIGHTS_MIRROR"

_DOWNLOAD_ERRORS = (OSError, urllib.error.URLError, http.client.HTTPException, ValueError)


class WeightsError(RuntimeError):
    """A weights file that cannot be had or trusted."""


class WeightsHashError(WeightsError):
    """A downloaded or cached file whose size or SHA-256 is not the published one."""


class WeightsUnavailableError(WeightsError):
    """A file that is not in the cache and cannot be downloaded (offline, or every URL failed)."""


def cache_dir() -> str:
    """The weights cache folder: ``$TINYVISION_WEIGHTS_CACHE``, else ``$XDG_CACHE_HOME/tinyvision/weights``,
    else ``~/.cache/tinyvision/weights``."""
    explicit = os.environ.get(ENV_CACHE)
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tinyvision", "weights")


def cached_file(entry: WeightsEntry) -> str:
    """Where ``entry``'s published file is kept in the cache."""
    return os.path.join(cache_dir(), *entry.name.split("/"), entry.filename)


def is_offline() -> bool:
    """True when ``$TINYVISION_OFFLINE`` forbids downloads."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def file_lock(path: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed) for the block: one process at a time."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _sha256_and_size(path: str) -> Tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def verify_file(entry: WeightsEntry, path: str, origin: Optional[str] = None) -> str:
    """Check ``path`` against ``entry``'s size and digest; returns the file's SHA-256.

    Raises :class:`WeightsHashError` naming ``origin`` (the URL a download came from, else the path), the
    expected and the actual values. Without a full published digest, the prefix in the file name is checked
    (torch.hub's ``check_hash``).
    """
    actual, size = _sha256_and_size(path)
    where = origin or path
    if entry.size is not None and size != entry.size:
        raise WeightsHashError(
            f"{where} has {size} bytes, the published file {entry.filename} ({entry.name}) has {entry.size} "
            f"(truncated or another file; sha256 {actual}, expected {entry.digest_text})")
    ok = actual == entry.sha256 if entry.sha256 else actual.startswith(entry.hash_prefix or "")
    if not ok:
        raise WeightsHashError(f"{where} does not match the published digest of {entry.name}: "
                               f"expected sha256 {entry.digest_text}, got {actual}")
    return actual


#: files already verified in this process: path -> (mtime_ns, size, sha256)
_VERIFIED: Dict[str, Tuple[int, int, str]] = {}


def _verified_copy(entry: WeightsEntry, path: str) -> bool:
    """True when the cached ``path`` exists and matches ``entry`` (a mismatching copy is deleted)."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return False
    known = _VERIFIED.get(path)
    if known is not None and known[:2] == (stat.st_mtime_ns, stat.st_size):
        return True
    try:
        digest = verify_file(entry, path)
    except WeightsHashError as err:
        logger.warning("Cached weights file does not verify and is removed: %s", err)
        os.unlink(path)
        return False
    _VERIFIED[path] = (stat.st_mtime_ns, stat.st_size, digest)
    return True


def _candidate_urls(entry: WeightsEntry) -> List[str]:
    mirror = os.environ.get(ENV_MIRROR, "").strip()
    urls = [f"{mirror.rstrip('/')}/{entry.name}/{entry.filename}"] if mirror else []
    return urls + list(entry.urls)


def _missing_message(entry: WeightsEntry, dest: str, reason: str) -> str:
    return (f"weights {entry.name!r} are not in the cache and {reason}.\n"
            f"  published at: {entry.urls[0]}\n"
            f"  sha256:       {entry.digest_text}\n"
            f"  place it at:  {dest}\n"
            f"On a machine with internet: `python -m shared.weights fetch {entry.name}` (or `make weights`), "
            f"then copy the cache folder ({cache_dir()}; ${ENV_CACHE} chooses it) to this machine.")


def _download(url: str, entry: WeightsEntry, dest: str) -> None:
    """Download ``url`` into a temporary file beside ``dest``, verify it, rename it into place."""
    import torch.hub

    tmp = f"{dest}.{os.getpid()}.part"
    logger.info("Downloading weights %s from %s to %s%s", entry.name, url, dest,
                f" ({entry.size / 2**20:.1f} MiB)" if entry.size else "")
    try:
        torch.hub.download_url_to_file(url, tmp, hash_prefix=None, progress=False)
        digest = verify_file(entry, tmp, origin=url)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    stat = os.stat(dest)
    _VERIFIED[dest] = (stat.st_mtime_ns, stat.st_size, digest)
    logger.info("Verified %s: sha256 %s", dest, digest)


def fetch(name: str) -> str:
    """The local path of catalog entry ``name``'s published file: from the cache, or downloaded, verified and
    cached on first use. Raises :class:`WeightsUnavailableError` or :class:`WeightsHashError`."""
    entry = get_entry(name)
    dest = cached_file(entry)
    if _verified_copy(entry, dest):
        return dest
    with file_lock(dest + ".lock"):
        if _verified_copy(entry, dest):  # another process downloaded it while we waited
            return dest
        if is_offline():
            raise WeightsUnavailableError(_missing_message(entry, dest, f"{ENV_OFFLINE} forbids downloads"))
        failures = []
        for url in _candidate_urls(entry):
            try:
                _download(url, entry, dest)
                return dest
            except WeightsHashError:
                raise
            except _DOWNLOAD_ERRORS as err:
                failures.append(f"{url}: {type(err).__name__}: {err}")
                logger.warning("Download of %s failed: %s", url, failures[-1])
        raise WeightsUnavailableError(_missing_message(
            entry, dest, "could not be downloaded (" + "; ".join(failures) + ")"))
