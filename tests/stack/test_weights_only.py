"""No code runs from a weights file: every user-supplied checkpoint path our code opens is read with
``torch.load(..., weights_only=True)``, so a file carrying a pickled callable is refused with an error that
names the offending global, and the callable never runs."""
import importlib.util
import os
import pickle
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


class _Payload:
    """Pickles as a call of ``os.system`` that would create ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _crafted_weights(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "code_ran"
    path = tmp_path / "crafted.pth"
    torch.save({"fc.weight": torch.zeros(2, 2), "evil": _Payload(marker)}, path)
    return path, marker


def test_crafted_file_runs_code_without_weights_only(tmp_path):
    # the hazard itself, so that the refusals below are meaningful
    path, marker = _crafted_weights(tmp_path)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_iif_classification_refuses_crafted_model_weights(tmp_path, monkeypatch):
    # projects/IIF/train_cls.py reads MODEL.WEIGHTS (and OUTPUT_DIR/stage1.pth on --resume) itself. torch 2.6+
    # defaults to weights_only=True, but this variable (often suggested to silence load errors) turns the
    # default off; only an explicit weights_only=True at the call site stays safe.
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    spec = importlib.util.spec_from_file_location("iif_train_cls", REPO / "projects/IIF/train_cls.py")
    train_cls = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_cls)
    path, marker = _crafted_weights(tmp_path)
    monkeypatch.setattr(train_cls, "train_stage1", lambda *a, **k: pytest.fail("training started"))
    # no images needed: the weights are read before training (labels of a 10-class long-tailed set)
    monkeypatch.setattr(train_cls, "build_loaders", lambda cfg: (None, None, [c for c in range(10)
                                                                             for _ in range(20 - c)]))
    monkeypatch.setattr(sys, "argv", [
        "train_cls.py", "--config-file", str(REPO / "projects/IIF/configs/classification/synthetic_lt.yaml"),
        "DATA.ROOT", str(tmp_path / "data"), "OUTPUT_DIR", str(tmp_path / "out"), "MODEL.WEIGHTS", str(path),
        "MODEL.DEVICE", "cpu"])
    with pytest.raises(pickle.UnpicklingError, match="(?s)Weights only load failed.*GLOBAL posix.system"):
        train_cls.main()
    assert not marker.exists()
