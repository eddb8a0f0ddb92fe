"""One run per output folder; ``--resume`` never deletes another live process's files; prediction files are
written whole.

Before: two runs in one OUTPUT_DIR both exited 0 with checkpoints overwriting each other; ``--eval-only
--resume`` on the folder of a running training deleted its in-flight ``.tmp`` (the training died); an
``--eval-only`` that could not finish writing truncated ``instances_predictions.pth`` in place.
"""
import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from argparse import Namespace

import pytest
import torch

from shared.engine import AtomicDetectionCheckpointer, setup
from shared.engine.checkpoint import _host_tag, remove_orphan_tmp_files
from shared.output_lock import LOCK_NAME, OutputDirBusyError, OutputDirLock, release_output_dir

_HOLDER = """
import sys, time
from shared.output_lock import OutputDirLock
OutputDirLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """A live process holding the lock of tmp_path/out."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc, out
    finally:
        proc.kill()
        proc.wait()


def _args(config="", eval_only=False, opts=()):
    return Namespace(config_file=config, opts=list(opts), eval_only=eval_only, resume=False, num_gpus=1,
                     num_machines=1, machine_rank=0, dist_url="auto")


def test_second_run_in_a_live_output_dir_is_refused_naming_the_owner(holder):
    from simd.config import add_simd_config

    proc, out = holder
    for eval_only in (False, True):
        with pytest.raises(OutputDirBusyError, match=rf"{out} is in use by pid {proc.pid} on host "
                                                     rf"{socket.gethostname()} \(training since"):
            setup(_args(eval_only=eval_only, opts=["OUTPUT_DIR", str(out)]), add_simd_config)
    assert not (out / "config.yaml").exists()  # refused before default_setup wrote anything


def test_stale_lock_of_a_killed_run_is_taken_over_with_a_log_line(holder, caplog):
    proc, out = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with caplog.at_level(logging.WARNING, logger="shared.output_lock"):
        lock = OutputDirLock(str(out)).acquire()
    try:
        assert f"took over the stale lock of pid {proc.pid}" in caplog.text
        record = json.loads((out / LOCK_NAME).read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        with pytest.raises(OutputDirBusyError):  # now ours: another lock object (another writer) is refused
            OutputDirLock(str(out)).acquire()
    finally:
        lock.release()
    assert (out / LOCK_NAME).read_text() == ""
    OutputDirLock(str(out)).acquire().release()  # released: free again, and not reported as stale


def test_without_flock_a_dead_pid_is_stale_and_a_live_or_remote_one_is_not(tmp_path, monkeypatch, holder):
    import fcntl

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    proc, _ = holder
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    cases = [({"pid": int(dead), "host": socket.gethostname()}, None),
             ({"pid": proc.pid, "host": socket.gethostname()}, f"pid {proc.pid}"),
             ({"pid": 1, "host": "elsewhere.example"}, "if that run is over, delete")]
    for i, (record, refused) in enumerate(cases):
        folder = tmp_path / f"d{i}"
        folder.mkdir()
        (folder / LOCK_NAME).write_text(json.dumps(record))
        if refused is None:
            OutputDirLock(str(folder)).acquire().release()
        else:
            with pytest.raises(OutputDirBusyError, match=refused):
                OutputDirLock(str(folder)).acquire()


def test_resume_keeps_the_tmp_files_of_a_live_process(tmp_path, holder):
    proc, _ = holder
    ckpt = AtomicDetectionCheckpointer(torch.nn.Linear(2, 2), str(tmp_path))
    ckpt.save("model_0000001", iteration=1)
    live = tmp_path / f".model_0000002.pth.{proc.pid}-{_host_tag()}.k2j4h6g8.tmp"  # a write in flight
    remote = tmp_path / f".model_0000002.pth.{proc.pid}-00000000.a1b2c3d4.tmp"  # another machine's
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout.strip()
    orphan = tmp_path / f".model_0000002.pth.{dead_pid}-{_host_tag()}.z9y8x7w6.tmp"
    for path in (live, remote, orphan):
        path.write_bytes(b"partial")
    ckpt.resume_or_load("", resume=True)
    assert live.exists() and remote.exists() and not orphan.exists()
    assert remove_orphan_tmp_files(str(tmp_path)) == []


def test_atomic_write_names_its_writer(tmp_path, monkeypatch):
    from shared.engine import atomic_write_bytes

    seen = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (seen.append(os.path.basename(src)),
                                                         real_replace(src, dst)))
    atomic_write_bytes(str(tmp_path / "x.pth"), b"1")
    assert seen and seen[0].startswith(f".x.pth.{os.getpid()}-{_host_tag()}.")


def _failing_torch_save(obj, f):
    f.write(b"\x80\x02 partial")
    raise OSError(errno.ENOSPC, "No space left on device")


def test_failed_prediction_write_keeps_the_previous_files(tmp_path, monkeypatch):
    from detectron2.data import MetadataCatalog
    from detectron2.evaluation import COCOEvaluator, coco_evaluation

    from shared.evaluation.synthetic import random_detection_set
    from tests.evaluation.test_detectron2_evaluators import _predictions, _register

    gt, results = random_detection_set(num_images=3, num_classes=2, dets_per_image=5, seed=1)
    name = _register("atomic_predictions_set", gt, tmp_path)
    mapping = MetadataCatalog.get(name).thing_dataset_id_to_contiguous_id
    out = tmp_path / "inference"

    def evaluate():
        ev = COCOEvaluator(name, tasks=("bbox",), distributed=False, output_dir=str(out))
        ev.reset()
        ev._predictions = _predictions(results, mapping.__getitem__)
        return ev.evaluate()

    evaluate()
    before = {p: (out / p).read_bytes() for p in ("instances_predictions.pth", "coco_instances_results.json")}
    assert len(torch.load(out / "instances_predictions.pth", weights_only=False)) == 3
    monkeypatch.setattr(coco_evaluation.torch, "save", _failing_torch_save)
    with pytest.raises(OSError, match="No space left"):
        evaluate()
    assert {p: (out / p).read_bytes() for p in before} == before
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


def test_atomic_open_keeps_the_previous_file_on_an_error(tmp_path):
    from shared.atomic_io import atomic_open

    path = tmp_path / "coco_instances_results.json"
    with atomic_open(path, "w") as f:
        f.write("[1, 2]")
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_open(path, "w") as f:
            f.write("[3, ")
            raise RuntimeError("interrupted")
    assert path.read_text() == "[1, 2]" and sorted(os.listdir(tmp_path)) == [path.name]
    with pytest.raises(ValueError, match="whole files"):
        atomic_open(path, "a")


def test_front_door_releases_the_lock_after_the_run(tmp_path):
    from simd.config import add_simd_config

    out = tmp_path / "out"
    args = _args(opts=["OUTPUT_DIR", str(out)])
    setup(args, add_simd_config)
    setup(args, add_simd_config)  # the same process may set up the same folder again
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
    release_output_dir(str(out))
    assert (out / LOCK_NAME).read_text() == ""
