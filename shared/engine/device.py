"""Device selection: CUDA when available, CPU otherwise (fastreid and detectron2 default to CUDA); CPU
threads."""
import os

import torch


def default_device() -> str:
    """``"cuda"`` if a CUDA device is usable, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(requested: str) -> str:
    """Map a configured ``MODEL.DEVICE`` to one that exists here.

    ``"auto"`` (or an empty string) picks :func:`default_device`. A CUDA device requested on a machine
    without CUDA raises a ``RuntimeError`` that says how to run on the CPU instead of failing deep
    inside the first ``.cuda()`` call.
    """
    requested = (requested or "auto").strip()
    if requested == "auto":
        return default_device()
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"MODEL.DEVICE={requested!r} but no CUDA device is available; "
            "pass `MODEL.DEVICE cpu` (or `auto`) to run on the CPU"
        )
    return requested


def cpu_intra_op_threads(processes_per_machine: int = 1) -> int:
    """Intra-op threads for one of ``processes_per_machine`` CPU training processes:
    ``max(1, min(usable // processes, round(usable - load) // processes))``, where ``usable`` is the number
    of CPUs this process may run on and ``load`` the 1-minute load average.

    On cores that other processes keep busy, every parallel op waits at its barrier for the thread that the
    OS descheduled; one SimD training iteration took 9.5 s with 2 threads against 1.3 s with 1 on two
    cores loaded to about 4. Counting only the idle cores avoids that, and an idle machine keeps all its
    cores.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        usable = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - no load average on this platform
        load = 0.0
    processes = max(1, int(processes_per_machine))
    idle = max(0, int(round(usable - load)))
    return max(1, min(usable // processes, idle // processes))


def set_cpu_threads(processes_per_machine: int = 1) -> int:
    """Set torch's intra-op threads to :func:`cpu_intra_op_threads` unless ``OMP_NUM_THREADS`` is set (then
    that value is kept); returns the thread count in use."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(cpu_intra_op_threads(processes_per_machine))
    return torch.get_num_threads()
