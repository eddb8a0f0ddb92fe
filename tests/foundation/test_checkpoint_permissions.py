"""Checkpoints are created with the process umask, like any file the user writes (issue: mkstemp made every
``.pth`` and ``last_checkpoint`` mode 0600, unreadable by the rest of a team on a shared cluster)."""
import os
import stat

import pytest
import torch

from shared.engine import AtomicDetectionCheckpointer


@pytest.fixture
def umask():
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_checkpoint_files_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    model = torch.nn.Linear(2, 2)
    AtomicDetectionCheckpointer(model, str(tmp_path)).save("model_0000001", iteration=1)
    for name in ("model_0000001.pth", "model_0000001.pth.sha256", "last_checkpoint"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode, name
    # a plain open() under the same umask gives the same mode
    with open(tmp_path / "plain", "wb"):
        pass
    assert stat.S_IMODE(os.stat(tmp_path / "plain").st_mode) == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "last_checkpoint", "model_0000001.pth", "model_0000001.pth.sha256", "plain"]
