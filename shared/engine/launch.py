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

CPU threads: without CUDA (one process or gloo workers), unless ``OMP_NUM_THREADS`` is set, each process
uses :func:`shared.engine.device.cpu_intra_op_threads` intra-op threads: the idle cores (usable CPUs minus
the 1-minute load average, at least 1) shared among the processes of the machine. On cores that other jobs
keep busy every parallel op waits for a descheduled thread, so fewer threads train faster there.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import socket
from datetime import timedelta
from typing import Any, Callable, Optional, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from shared.engine.device import set_cpu_threads

__all__ = ["DEFAULT_TIMEOUT", "launch", "choose_backend"]

DEFAULT_TIMEOUT = timedelta(minutes=30)


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
    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        if not torch.cuda.is_available():
            _log_threads(set_cpu_threads(1))
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
                   timeout))


def _log_threads(threads: int) -> None:
    logging.getLogger(__name__).info(
        "CPU training: %d intra-op thread(s) per process (%s)", threads,
        "OMP_NUM_THREADS" if "OMP_NUM_THREADS" in os.environ
        else "idle cores: usable CPUs minus the load average")


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


def _worker(local_rank: int, main_func: Callable[..., Any], backend: str, world_size: int,
            num_per_machine: int, machine_rank: int, dist_url: str, args: tuple, timeout: timedelta) -> None:
    rank = machine_rank * num_per_machine + local_rank
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    else:  # share the idle cores instead of oversubscribing them N times
        _log_threads(set_cpu_threads(num_per_machine))
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
        main_func(*args)
        # leave together: a process that tears gloo down while its peer is still inside the last collective
        # can make the peer abort ("terminate called without an active exception", seen on 2 CPU cores)
        dist.barrier()
    finally:
        dist.destroy_process_group()
