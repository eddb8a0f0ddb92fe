"""shared.engine.device.cpu_intra_op_threads: intra-op threads of CPU training from idle cores."""
import os

import pytest

from shared.engine import device


@pytest.mark.parametrize("usable, load, processes, expected", [
    (2, 0.1, 1, 2),    # idle 2-core machine: both cores
    (2, 1.2, 1, 1),    # one core busy elsewhere
    (2, 4.0, 1, 1),    # loaded to 4: one thread, never 0
    (8, 2.4, 1, 6),    # round(8 - 2.4) = 6 idle cores
    (8, 0.0, 3, 2),    # 3 gloo processes share 8 idle cores: 8 // 3
    (8, 6.0, 2, 1),    # 2 idle cores for 2 processes
])
def test_threads_follow_idle_cores(monkeypatch, usable, load, processes, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(usable)))
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert device.cpu_intra_op_threads(processes) == expected


def test_omp_num_threads_is_respected(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    torch.set_num_threads(1)
    try:
        assert device.set_cpu_threads(1) == 1
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
        assert device.set_cpu_threads(1) == 2
    finally:
        torch.set_num_threads(before)
