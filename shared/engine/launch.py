"""``launch`` that also runs on a machine without CUDA: N gloo processes on the CPU.

detectron2 v0.6's ``launch`` (and fastreid's copy of it) asserts ``torch.cuda.is_available()`` in every
worker and always uses NCCL, so ``--num-gpus 2`` on a CPU machine stops, and the multi-process code of the
projects (gathers, sharded samplers, DDP gradient averaging, evaluation gathering) could only ever run on a
GPU cluster. Here the backend follows the machine: NCCL with one GPU per process when CUDA has enough
devices, gloo on the CPU when CUDA is absent. Everything else is detectron2's contract: the same arguments
(``--num-gpus`` is read as "processes per machine"), ``dist_url="auto"`` picks a free local port, and each
worker sets up detectron2's (and fastreid's, when installed) local process group before calling
``main_func(*args)``.

On the CPU, DDP must be built without ``device_ids``; :mod:`shared.compat` makes detectron2's and fastreid's
``DefaultTrainer`` do so.

Faults of a multi-process run (docs/reliability.md):

* **the launcher dies** (killed, its terminal closed): each worker asks the kernel for ``SIGKILL`` when its
  parent exits (``prctl(PR_SET_PDEATHSIG)`` on Linux) and a watchdog thread checks the parent pid every
  second (every platform), so no worker keeps training as an orphan (torch's spawn asks for SIGINT, which a
  job started in the background of a shell script or under ``nohup`` ignores);
* **a rank stops answering** (frozen, stuck, dead machine): every collective waits at most ``--dist-timeout``
  seconds (:data:`DEFAULT_TIMEOUT`, 10 minutes; torch's default is 30); a worker whose collective times out
  raises :class:`CollectiveTimeoutError` naming the rank(s) that did not reach it, told apart through the
  rendezvous store: each worker writes a heartbeat there and marks a collective it timed out in, and the
  ranks that were not waiting are the ones that stopped answering.
"""
from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from datetime import timedelta
from typing import Any, Callable, List, Optional, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

__all__ = ["CollectiveTimeoutError", "DEFAULT_TIMEOUT", "launch", "choose_backend"]

#: how long a collective (all-reduce, barrier, gather) may wait for the other ranks: ``--dist-timeout``
DEFAULT_TIMEOUT = timedelta(minutes=10)

_HEARTBEAT = "tinyvision/heartbeat/{}"
_TIMED_OUT = "tinyvision/timed_out/{}"
_TIMEOUT_TEXT = re.compile(r"timed? ?out|timeout|deadline", re.IGNORECASE)


class CollectiveTimeoutError(RuntimeError):
    """A collective did not complete within the process group's timeout; the message names the rank(s)
    that stopped answering."""


def _free_local_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def choose_backend(num_processes_per_machine: int) -> str:
    """``"nccl"`` when CUDA is available (one device per process, as detectron2), ``"gloo"`` without CUDA.

    CUDA with fewer devices than processes is an error naming both numbers (rather than a silent fall back
    to the CPU on a GPU machine).
    """
    if not torch.cuda.is_available():
        return "gloo"
    available = torch.cuda.device_count()
    if num_processes_per_machine > available:
        raise ValueError(f"--num-gpus {num_processes_per_machine} asks for one GPU per process, but this "
                         f"machine has {available} CUDA device(s)")
    return "nccl"


def launch(main_func: Callable[..., Any], num_gpus_per_machine: int, num_machines: int = 1,
           machine_rank: int = 0, dist_url: Optional[str] = None, args: Sequence[Any] = (),
           timeout: timedelta = DEFAULT_TIMEOUT, backend: Optional[str] = None) -> None:
    """Run ``main_func(*args)`` in ``num_gpus_per_machine`` processes on each of ``num_machines`` machines.

    One process in total calls ``main_func`` directly (no process group), as detectron2. Otherwise the
    processes are spawned with ``torch.multiprocessing`` and joined into one process group over
    ``dist_url`` (``"auto"``: a free port on 127.0.0.1, single machine only) with ``backend`` (default
    :func:`choose_backend`: NCCL on GPUs, gloo on the CPU).
    """
    for flag, value, low in (("--num-gpus", num_gpus_per_machine, 1), ("--num-machines", num_machines, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{flag} must be an integer >= {low}, got {value!r}")
    if not 0 <= machine_rank < num_machines:
        raise ValueError(f"--machine-rank must be in [0, --num-machines={num_machines}), got {machine_rank}")
    if timeout.total_seconds() <= 0:
        raise ValueError(f"--dist-timeout must be > 0 seconds, got {timeout.total_seconds():g}")
    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        main_func(*args)
        return
    backend = backend or choose_backend(num_gpus_per_machine)
    if dist_url is None or dist_url == "auto":
        if num_machines != 1:
            raise ValueError("--dist-url auto works on one machine only; give tcp://<host of rank 0>:<port>")
        dist_url = f"tcp://127.0.0.1:{_free_local_port()}"
    if num_machines > 1 and dist_url.startswith("file://"):
        logging.getLogger(__name__).warning("file:// init is unreliable across machines; prefer tcp://")
    mp.spawn(_worker, nprocs=num_gpus_per_machine, daemon=False,
             args=(main_func, backend, world_size, num_gpus_per_machine, machine_rank, dist_url, tuple(args),
                   timeout, os.getpid()))


def _set_local_groups(num_per_machine: int, world_size: int, machine_rank: int) -> None:
    """Every rank creates every machine's group (``new_group`` is collective); keep our machine's one in
    detectron2's and fastreid's ``comm`` (``get_local_rank`` / ``get_local_size`` read it)."""
    from detectron2.utils import comm as d2_comm

    comms = [d2_comm]
    if importlib.util.find_spec("fastreid") is not None:
        from fastreid.utils import comm as reid_comm

        comms.append(reid_comm)
    for machine in range(world_size // num_per_machine):
        group = dist.new_group(list(range(machine * num_per_machine, (machine + 1) * num_per_machine)))
        if machine == machine_rank:
            for module in comms:
                module._LOCAL_PROCESS_GROUP = group


def _die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when ``parent_pid`` (the launcher) exits: prctl(PR_SET_PDEATHSIG) on Linux, and
    a thread that checks the parent pid every second everywhere (and covers a parent that died before)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                sys.stderr.write(f"launcher (pid {parent_pid}) is gone: worker {os.getpid()} exits\n")
                sys.stderr.flush()
                os._exit(1)
            time.sleep(1.0)

    threading.Thread(target=watch, name="launcher-watchdog", daemon=True).start()


def _heartbeat_period(timeout: timedelta) -> float:
    return max(0.5, min(5.0, timeout.total_seconds() / 4))


def _is_collective_timeout(err: BaseException) -> bool:
    """A timeout raised by a collective (gloo; NCCL errors that reach Python), not e.g. a DataLoader's."""
    text = str(err)
    distributed = isinstance(err, getattr(dist, "DistError", ())) or re.search(
        r"gloo|nccl|collective|process ?group", text, re.IGNORECASE) is not None
    return distributed and _TIMEOUT_TEXT.search(text) is not None


def _start_heartbeat(rank: int, timeout: timedelta) -> None:
    """Write ``time.time()`` to the rendezvous store under this rank's heartbeat key every few seconds."""
    try:
        store = dist.distributed_c10d._get_default_store()
    except (AttributeError, RuntimeError, ValueError):  # a torch without it: no rank naming, same timeout
        return
    period = _heartbeat_period(timeout)

    def beat() -> None:
        while True:
            try:
                store.set(_HEARTBEAT.format(rank), repr(time.time()))
            except Exception:  # the store host (rank 0) is gone; the collective's error will say so
                return
            time.sleep(period)

    threading.Thread(target=beat, name="dist-heartbeat", daemon=True).start()


def _unresponsive_ranks(rank: int, world_size: int, timeout: timedelta) -> str:
    """After a collective of ``rank`` timed out: which ranks stopped answering, from the store's records."""
    wait = max(1.0, min(10.0, timeout.total_seconds()))
    try:
        store = dist.distributed_c10d._get_default_store()
        store.set_timeout(timedelta(seconds=wait))
        store.set(_TIMED_OUT.format(rank), "1")
        time.sleep(wait)  # the other waiting ranks time out too and mark it
        now = time.time()
        silent: List[str] = []
        for other in range(world_size):
            if other == rank or store.check([_TIMED_OUT.format(other)]):
                continue
            age = now - float(store.get(_HEARTBEAT.format(other)).decode()) \
                if store.check([_HEARTBEAT.format(other)]) else None
            state = ("no heartbeat ever" if age is None else f"last heartbeat {age:.0f} s ago: frozen or dead"
                     if age > 3 * _heartbeat_period(timeout) else "alive but did not reach the collective")
            silent.append(f"rank {other} ({state})")
    except Exception:  # the store itself is unreachable: its host stopped answering
        return "rank 0 (it hosts the rendezvous store, which no longer answers)"
    return ", ".join(silent) if silent else "none identified (every rank timed out: a network fault?)"


def _worker(local_rank: int, main_func: Callable[..., Any], backend: str, world_size: int,
            num_per_machine: int, machine_rank: int, dist_url: str, args: tuple, timeout: timedelta,
            launcher_pid: Optional[int] = None) -> None:
    if launcher_pid is not None:
        _die_with_parent(launcher_pid)
    rank = machine_rank * num_per_machine + local_rank
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    elif "OMP_NUM_THREADS" not in os.environ:  # share the cores instead of oversubscribing them N times
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // num_per_machine))
    try:
        dist.init_process_group(backend=backend, init_method=dist_url, world_size=world_size, rank=rank,
                                timeout=timeout)
    except Exception:
        logging.getLogger(__name__).error("process group init failed: %s (rank %d of %d)", dist_url, rank,
                                          world_size)
        raise
    try:
        _set_local_groups(num_per_machine, world_size, machine_rank)
        dist.barrier()
        _start_heartbeat(rank, timeout)
        main_func(*args)
        # leave together: a process that tears gloo down while its peer is still inside the last collective
        # can make the peer abort ("terminate called without an active exception", seen on 2 CPU cores)
        dist.barrier()
    except RuntimeError as err:
        if not _is_collective_timeout(err):
            raise
        silent = _unresponsive_ranks(rank, world_size, timeout)
        raise CollectiveTimeoutError(
            f"rank {rank} of {world_size}: a collective did not complete within --dist-timeout="
            f"{timeout.total_seconds():g} s; stopped answering: {silent}. ({str(err).splitlines()[0]})"
        ) from err
    finally:
        dist.destroy_process_group()
