"""Faults of a multi-process run: a frozen rank is named within ``--dist-timeout`` (before: the other rank
waited silently for torch's 30-minute default), and killing the launcher ends its workers (before: both
kept training as orphans and wrote ``model_final.pth`` 25 s later)."""
import os
import signal
import subprocess
import sys
import time
from argparse import Namespace

import pytest
import torch
import torch.multiprocessing as mp

from shared.engine import default_argument_parser, launch_from_args
from shared.engine.launch import DEFAULT_TIMEOUT

# slow: each waits for a timeout or a killed process tree (~15 s each on 2 cores); make test-slow runs them
pytestmark = [pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU path: gloo processes"),
              pytest.mark.slow]


def _rank1_freezes(args: Namespace) -> None:
    import torch.distributed as dist

    if dist.get_rank() == 1:
        time.sleep(120)  # frozen: never reaches the collective
    dist.all_reduce(torch.ones(1))


def test_a_rank_that_stops_answering_is_named_within_the_timeout():
    parser = default_argument_parser()
    assert parser.parse_args([]).dist_timeout == DEFAULT_TIMEOUT.total_seconds() == 600
    args = parser.parse_args(["--num-gpus", "2", "--dist-timeout", "4"])
    start = time.monotonic()
    with pytest.raises(mp.ProcessRaisedException) as info:
        launch_from_args(_rank1_freezes, args)
    message = str(info.value)
    assert "CollectiveTimeoutError: rank 0 of 2" in message and "--dist-timeout=4 s" in message
    assert "stopped answering: rank 1 (alive but did not reach the collective)" in message
    assert time.monotonic() - start < 100  # not the 30-minute default


_SCRIPT = """
import os, sys, time
from shared.engine.launch import launch


def main(out):
    open(os.path.join(out, f"worker{os.getpid()}"), "w").close()
    time.sleep(120)


if __name__ == "__main__":
    launch(main, 2, dist_url="auto", args=(sys.argv[1],))
"""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_exit_when_the_launcher_is_killed(tmp_path):
    script = tmp_path / "launcher.py"
    script.write_text(_SCRIPT)
    # started like a background job of a shell script (`python train_net.py ... &`, nohup): SIGINT ignored,
    # so torch's own parent-death signal (SIGINT) does not reach the workers
    launcher = subprocess.Popen([sys.executable, str(script), str(tmp_path)],
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        deadline = time.monotonic() + 240
        while len(list(tmp_path.glob("worker*"))) < 2:
            assert time.monotonic() < deadline and launcher.poll() is None
            time.sleep(0.5)
        workers = [int(p.name[len("worker"):]) for p in tmp_path.glob("worker*")]
        assert all(_running(pid) for pid in workers)
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        deadline = time.monotonic() + 15
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_running(pid) for pid in workers)
    finally:
        launcher.kill()
        for path in tmp_path.glob("worker*"):
            try:
                os.kill(int(path.name[len("worker"):]), signal.SIGKILL)
            except ProcessLookupError:
                pass
