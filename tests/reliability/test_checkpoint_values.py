"""Weights are refused when their values or their origin cannot be trusted.

* NaN / inf in a checkpoint's weights: refused naming the file and the first tensors (before: ``--eval-only``
  evaluated them and reported AP 0, "no predictions");
* a checkpoint our trainers wrote (it holds the ``"resume"`` state) whose ``.sha256`` is missing: refused by
  default, ``MODEL.WEIGHTS_ALLOW_MISSING_SHA256 True`` loads it (before: loaded unverified, also on
  ``--resume``, so 64 flipped bytes evaluated at AP25 0.039 instead of 0.155);
* a file we did not write: checked against the weights catalog's sha256 when the catalog knows it.
"""
import argparse
import logging
import os
import pickle

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from fastreid.utils.checkpoint import Checkpointer as FastReIDCheckpointer

from shared.engine import AtomicCheckpointing, AtomicDetectionCheckpointer, GenericTrainer, train_or_evaluate
from shared.engine.checkpoint import CheckpointFileError, add_checkpoint_config, sha256_of_file
from shared.weights import CATALOG, WeightsEntry


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = torch.nn.Linear(4, 5)
        self.head = torch.nn.Linear(5, 3)


class _D2(AtomicCheckpointing):
    pass


class _ReID(AtomicCheckpointing):
    checkpointer_cls = FastReIDCheckpointer


def _cfg(tmp_path, **model):
    cfg = get_cfg()
    add_checkpoint_config(cfg)
    cfg.OUTPUT_DIR = str(tmp_path)
    for key, value in model.items():
        cfg.MODEL[key] = value
    return cfg


def _save(tmp_path, model, name, ours=True):
    """A checkpoint as our trainers write it (``ours``: with the resume state) and its ``.sha256``."""
    checkpointer = AtomicDetectionCheckpointer(model, str(tmp_path))
    if ours:
        checkpointer.resume_state_fn = lambda: {"sampler": {"position": 4}}
    checkpointer.save(name, iteration=4)
    return str(tmp_path / f"{name}.pth")


# --------------------------------------------------------------------------------------- non-finite values
@pytest.mark.parametrize("trainer", [_D2, _ReID], ids=["detectron2", "fastreid"])
def test_nan_weights_are_refused_naming_the_file_and_the_tensors(tmp_path, trainer):
    model = Net()
    with torch.no_grad():
        model.head.weight[1, 2] = float("nan")
        model.head.bias[0] = float("inf")
    path = _save(tmp_path, model, "model_final")  # intact file, digest matches: the values are the fault
    with pytest.raises(CheckpointFileError,
                       match=r"refusing to load .*model_final\.pth: 2 of its tensors hold NaN or inf values: "
                             r"head\.weight \(1 of 15 values\), head\.bias \(1 of 3 values\)"):
        trainer.build_checkpointer(Net(), _cfg(tmp_path)).load(path, checkpointables=[])


def test_nan_in_a_model_zoo_pkl_is_refused(tmp_path):
    blobs = {k: v.detach().numpy().copy() for k, v in Net().state_dict().items()}
    blobs["backbone.weight"][0, 0] = np.nan
    path = tmp_path / "R-50.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": blobs, "__author__": "zoo"}, f, protocol=2)
    with pytest.raises(CheckpointFileError, match=r"R-50\.pkl: 1 of its tensors .*backbone\.weight \(1 "):
        AtomicDetectionCheckpointer(Net(), str(tmp_path)).load(str(path))


def test_eval_only_with_nan_weights_fails_instead_of_reporting_ap_0(tmp_path):
    class Toy(GenericTrainer):
        @classmethod
        def build_model(cls, cfg):
            return Net()

        @classmethod
        def test(cls, cfg, model):
            return {"toy": {"AP": 0.0}}

    model = Net()
    with torch.no_grad():
        model.backbone.weight.fill_(float("nan"))
    cfg = _cfg(tmp_path)
    cfg.MODEL.WEIGHTS = _save(tmp_path, model, "diverged")
    with pytest.raises(CheckpointFileError, match=r"diverged\.pth: 1 of its tensors .*backbone\.weight"):
        train_or_evaluate(Toy, cfg, argparse.Namespace(eval_only=True, resume=False))


# --------------------------------------------------------------------------------------- missing digest
@pytest.mark.parametrize("trainer", [_D2, _ReID], ids=["detectron2", "fastreid"])
def test_our_checkpoint_without_its_digest_is_refused_unless_allowed(tmp_path, trainer, caplog):
    source = Net()
    path = _save(tmp_path, source, "model_0000004")
    os.unlink(path + ".sha256")  # copied without it, or deleted
    with pytest.raises(CheckpointFileError,
                       match=r"model_0000004\.pth was written by a trainer of this toolkit .*"
                             r"model_0000004\.pth\.sha256 is missing.*"
                             r"MODEL\.WEIGHTS_ALLOW_MISSING_SHA256 True"):
        trainer.build_checkpointer(Net(), _cfg(tmp_path)).load(path, checkpointables=[])
    # the documented switch loads it, with a warning
    target = Net()
    with caplog.at_level(logging.WARNING, logger="shared.engine.checkpoint"):
        trainer.build_checkpointer(target, _cfg(tmp_path, WEIGHTS_ALLOW_MISSING_SHA256=True)).load(
            path, checkpointables=[])
    assert torch.equal(target.head.weight, source.head.weight)
    assert "without its digest" in caplog.text


def test_resume_from_our_checkpoint_without_its_digest_is_refused(tmp_path):
    """The trainers' own checkpointer (made atomic in build_hooks) is refused the same way on --resume."""
    path = _save(tmp_path, Net(), "model_0000004")
    os.unlink(path + ".sha256")
    checkpointer = _D2.build_checkpointer(Net(), _cfg(tmp_path), strict=None)
    with pytest.raises(CheckpointFileError, match="sha256 is missing"):
        checkpointer.resume_or_load("", resume=True)  # last_checkpoint -> model_0000004.pth


def test_files_we_did_not_write_still_load_without_a_digest(tmp_path):
    source = Net()
    path = _save(tmp_path, source, "torchvision_style", ours=False)  # no resume state: not one of ours
    os.unlink(path + ".sha256")
    target = Net()
    _D2.build_checkpointer(target, _cfg(tmp_path)).load(path, checkpointables=[])
    assert torch.equal(target.head.weight, source.head.weight)


# --------------------------------------------------------------------------------------- weights catalog
def test_files_the_catalog_knows_must_have_its_sha256(tmp_path, monkeypatch):
    source = Net()
    path = _save(tmp_path, source, "R-18", ours=False)
    os.unlink(path + ".sha256")
    published = sha256_of_file(path)
    entry = WeightsEntry(name="test/R-18", urls=("https://example.invalid/weights/R-18.pth",),
                         sha256=published, hash_prefix=None, size=None, format="detectron2", source="test")
    monkeypatch.setitem(CATALOG, entry.name, entry)
    target = Net()
    AtomicDetectionCheckpointer(target, str(tmp_path)).load(path)  # intact: loads
    assert torch.equal(target.head.weight, source.head.weight)

    data = bytearray(open(path, "rb").read())
    start = bytes(data).find(source.head.weight.detach().numpy().tobytes())
    assert start > 0
    for i in range(60):  # 60 flipped bytes of head.weight's values (the file still loads), no .sha256
        data[start + i] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(CheckpointFileError,
                       match=r"R-18\.pth is the catalog's 'test/R-18' \(by its name\) but its "
                             rf"sha256 is [0-9a-f]{{64}}, not the published {published}"):
        AtomicDetectionCheckpointer(Net(), str(tmp_path)).load(path)
