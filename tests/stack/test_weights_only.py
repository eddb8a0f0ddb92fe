"""No code runs from a weights file: every user-supplied checkpoint path our code opens is read with
``torch.load(..., weights_only=True)``, so a file carrying a pickled callable is refused with an error that
names the offending global, and the callable never runs."""
import os
import pickle
from pathlib import Path

import pytest
import torch


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


def test_iif_classification_pretrained_weights_refuse_a_pickled_callable(tmp_path, monkeypatch):
    # MODEL.CLS.PRETRAINED of IIF's long-tailed classification goes through load_pretrained. torch 2.6+
    # defaults to weights_only=True, but this variable (often suggested to silence load errors) turns the
    # default off; only an explicit weights_only=True at the call site stays safe.
    from iif.modeling.classifiers import load_pretrained

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    path, marker = _crafted_weights(tmp_path)
    net = torch.nn.Sequential()
    net.add_module("fc", torch.nn.Linear(2, 2))
    with pytest.raises(pickle.UnpicklingError, match="(?s)Weights only load failed.*GLOBAL posix.system"):
        load_pretrained(net, str(path))
    assert not marker.exists()
    # an honest weights file still loads
    good = tmp_path / "good.pth"
    torch.save({"model": {"fc.weight": torch.ones(2, 2), "fc.bias": torch.zeros(2)}}, good)
    load_pretrained(net, str(good))
    assert torch.equal(net.fc.weight, torch.ones(2, 2))
