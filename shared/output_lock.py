"""One run per output folder.

Two runs writing into one ``OUTPUT_DIR`` overwrite each other's checkpoints and ``last_checkpoint``,
interleave ``metrics.json`` and ``log.txt``, and both exit 0. :func:`shared.engine.setup` therefore takes
``OUTPUT_DIR/run.lock`` (the main process only, before ``config.yaml`` is written) for training and for
``--eval-only``, and :func:`shared.engine.train_or_evaluate` releases it when the run ends:

* the lock is an exclusive ``flock`` on ``run.lock``, which holds the owner's pid, host, start time and
  command line; a second writer gets :class:`OutputDirBusyError` naming them;
* the kernel releases a ``flock`` when its process dies (kill -9, crash), so a lock left behind is
  recognised as stale -- the file still names a process that no longer holds it -- and taken over with a
  log line naming that process;
* on a file system without ``flock`` the pid is checked instead (same host: a dead pid is stale; another
  host: refused, naming the file to delete when that run is known to be over);
* the same process may take the lock of a folder again (a script that trains and then evaluates).
"""
from __future__ import annotations

import atexit
import datetime
import errno
import json
import logging
import os
import socket
import sys
from typing import Any, Dict, Optional

__all__ = ["LOCK_NAME", "OutputDirBusyError", "OutputDirLock", "acquire_output_dir", "pid_alive",
           "release_output_dir"]

logger = logging.getLogger(__name__)

#: the lock file in OUTPUT_DIR
LOCK_NAME = "run.lock"

_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


class OutputDirBusyError(RuntimeError):
    """Another live process is writing into the same ``OUTPUT_DIR``."""


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` exists on this machine (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(record: Dict[str, Any]) -> str:
    return (f"pid {record.get('pid', '?')} on host {record.get('host', '?')} "
            f"({record.get('purpose', 'a run')} since {record.get('started', '?')}: "
            f"{record.get('command', '?')})")


class OutputDirLock:
    """The lock of one output folder; :meth:`acquire` raises :class:`OutputDirBusyError` when it is taken."""

    def __init__(self, directory: str, purpose: str = "training") -> None:
        self.directory = os.path.abspath(directory)
        self.path = os.path.join(self.directory, LOCK_NAME)
        self.purpose = purpose
        self._fd: Optional[int] = None
        #: the record of the stale lock taken over by :meth:`acquire` (None: the folder was free)
        self.stale: Optional[Dict[str, Any]] = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _read(self, fd: int) -> Dict[str, Any]:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 1 << 16)
        try:
            record = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            record = {"pid": "?", "host": "?", "command": f"unreadable lock file {self.path}"}
        return record if isinstance(record, dict) else {}

    def _busy(self, record: Dict[str, Any], extra: str = "") -> OutputDirBusyError:
        return OutputDirBusyError(
            f"OUTPUT_DIR {self.directory} is in use by {_describe(record)}. Two runs in one output folder "
            "overwrite each other's checkpoints and metrics: wait for that run to end, or choose another "
            f"OUTPUT_DIR{extra} (lock file {self.path})")

    def stale_message(self) -> str:
        return (f"OUTPUT_DIR {self.directory}: took over the stale lock of {_describe(self.stale or {})}; "
                "that process no longer holds it (killed or crashed)")

    def acquire(self, log: bool = True) -> "OutputDirLock":
        """Take the lock; ``log``: log the take-over of a stale lock here (else the caller logs
        :meth:`stale_message` once its log file is set up)."""
        if self._fd is not None:
            return self
        import fcntl

        os.makedirs(self.directory, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            raise OSError(err.errno, f"cannot open the lock file of OUTPUT_DIR {self.directory}: "
                                     f"{err.strerror}", self.path) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except BlockingIOError:
                raise self._busy(self._read(fd)) from None
            except OSError as err:
                if err.errno not in _NO_FLOCK:
                    raise
                locked = False
            previous = self._read(fd)
            if previous and not locked:
                self._check_without_flock(previous)
            self.stale = previous or None
            record = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose,
                      "started": datetime.datetime.now().isoformat(timespec="seconds"),
                      "command": " ".join(sys.argv)}
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(record) + "\n").encode("utf-8"))
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        if self.stale and log:
            logger.warning(self.stale_message())
        return self

    def _check_without_flock(self, previous: Dict[str, Any]) -> None:
        """No ``flock`` on this file system: a lock of a live pid on this host, or of another host, holds."""
        pid = previous.get("pid")
        if previous.get("host") != socket.gethostname():
            raise self._busy(previous, extra=f"; if that run is over, delete {self.path}")
        if isinstance(pid, int) and pid != os.getpid() and pid_alive(pid):
            raise self._busy(previous)

    def release(self) -> None:
        """Empty the lock file and unlock it (the file stays: deleting it could let two runs lock two
        files)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the last descriptor releases the flock


_HELD: Dict[str, OutputDirLock] = {}


def acquire_output_dir(directory: str, purpose: str = "training", log: bool = True) -> OutputDirLock:
    """Take the lock of ``directory`` for this process (again: a no-op) until :func:`release_output_dir` or
    the end of the process."""
    key = os.path.realpath(directory)
    lock = _HELD.get(key)
    if lock is None or not lock.held:
        lock = OutputDirLock(directory, purpose).acquire(log=log)
        _HELD[key] = lock
    return lock


def release_output_dir(directory: str) -> None:
    """Release the lock this process holds on ``directory`` (nothing if it holds none)."""
    lock = _HELD.pop(os.path.realpath(directory), None)
    if lock is not None:
        lock.release()


@atexit.register
def _release_all() -> None:
    for key in list(_HELD):
        _HELD.pop(key).release()
