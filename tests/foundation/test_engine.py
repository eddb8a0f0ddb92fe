"""shared.engine: atomic checkpoints that survive a failed save, resume, device resolution, dataset paths."""
import os

import pytest
import torch

from shared.datasets import require_path
from shared.engine import AtomicDetectionCheckpointer, atomic_write_bytes, resolve_device


def _model(value: float) -> torch.nn.Module:
    m = torch.nn.Linear(3, 2)
    torch.nn.init.constant_(m.weight, value)
    return m


def test_atomic_checkpoint_survives_a_crash_during_save(tmp_path, monkeypatch):
    model = _model(1.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ckpt = AtomicDetectionCheckpointer(model, str(tmp_path), optimizer=opt)
    ckpt.save("model_0000009", iteration=9)
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000009.pth"

    torch.nn.init.constant_(model.weight, 2.0)

    def failing_save(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save("model_0000019", iteration=19)
    monkeypatch.undo()

    assert not (tmp_path / "model_0000019.pth").exists()
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000009.pth"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]

    fresh = _model(0.0)
    extra = AtomicDetectionCheckpointer(fresh, str(tmp_path)).resume_or_load("", resume=True)
    assert extra["iteration"] == 9
    assert torch.all(fresh.weight == 1.0)


def test_atomic_write_bytes_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(str(path), b"first")
    atomic_write_bytes(str(path), b"second")
    assert path.read_bytes() == b"second"


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="MODEL.DEVICE cpu"):
            resolve_device("cuda")


def test_require_path_names_dataset_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    missing = str(tmp_path / "AI-TOD" / "annotations")
    with pytest.raises(FileNotFoundError, match=r"'aitod_train'.*AI-TOD/annotations.*DETECTRON2_DATASETS"):
        require_path(missing, "aitod_train")
    assert require_path(str(tmp_path), "x") == str(tmp_path)
