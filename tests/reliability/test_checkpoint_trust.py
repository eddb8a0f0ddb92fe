"""Weights files are trusted only when they are intact, safe and fit the model.

* every checkpoint gets ``<file>.sha256``; a flipped byte, an empty or truncated file is an error naming it
  (before: flipped bytes loaded silently, an empty file raised a bare ``EOFError``);
* model-zoo ``.pkl`` files go through a restricted unpickler (before: ``pickle.load`` ran a crafted file's
  code); ``.pth`` files through ``torch.load(weights_only=True)``;
* ``--eval-only`` / resume / full-model checkpoints must load every parameter (before: a checkpoint of another
  architecture evaluated a random model after one warning line); backbone-only files still start training;
  ``MODEL.WEIGHTS_REINIT`` lists the heads meant to be re-initialised.
"""
import os
import pickle

import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from fastreid.utils.checkpoint import Checkpointer as FastReIDCheckpointer

from shared.engine import AtomicCheckpointing, AtomicDetectionCheckpointer, make_atomic
from shared.engine.checkpoint import (
    CheckpointFileError,
    IncompatibleCheckpointError,
    UnsafePickleError,
    add_checkpoint_config,
    safe_pickle_load,
)


class Net(torch.nn.Module):
    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.backbone = torch.nn.Linear(4, 5)
        self.head = torch.nn.Linear(5, classes)


class Other(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Conv2d(3, 2, 1)


def _cfg(tmp_path, *reinit):
    cfg = get_cfg()
    add_checkpoint_config(cfg)
    cfg.OUTPUT_DIR = str(tmp_path)
    cfg.MODEL.WEIGHTS_REINIT = list(reinit)
    return cfg


class _D2(AtomicCheckpointing):
    pass


class _ReID(AtomicCheckpointing):
    checkpointer_cls = FastReIDCheckpointer


def _saved(tmp_path, model=None, name="model_0000009"):
    model = model or Net()
    AtomicDetectionCheckpointer(model, str(tmp_path)).save(name, iteration=9)
    return str(tmp_path / f"{name}.pth"), model


# --------------------------------------------------------------------------------------- integrity
def test_every_checkpoint_gets_a_sha256_that_is_checked(tmp_path):
    path, model = _saved(tmp_path)
    digest = open(path + ".sha256").read().split()
    import hashlib
    assert digest == [hashlib.sha256(open(path, "rb").read()).hexdigest(), "model_0000009.pth"]
    fresh = Net()
    AtomicDetectionCheckpointer(fresh, str(tmp_path)).load(path)
    assert torch.equal(fresh.head.weight, model.head.weight)

    data = bytearray(open(path, "rb").read())
    for i in range(64):  # 64 flipped bytes in the middle of the tensor data
        data[len(data) // 2 + i] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(CheckpointFileError, match=r"model_0000009\.pth does not match its digest"):
        AtomicDetectionCheckpointer(Net(), str(tmp_path)).load(path)


def test_empty_and_truncated_checkpoints_name_the_file(tmp_path):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointFileError, match=r"empty\.pth is empty \(0 bytes\)"):
        AtomicDetectionCheckpointer(Net(), str(tmp_path)).load(str(empty))
    path, _ = _saved(tmp_path)
    os.unlink(path + ".sha256")  # a copy without its digest, cut short
    data = open(path, "rb").read()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointFileError, match=r"cannot read checkpoint .*cut\.pth"):
        AtomicDetectionCheckpointer(Net(), str(tmp_path)).load(str(cut))
    for reader in (_D2, _ReID):  # the same through fastreid's checkpointer
        with pytest.raises(CheckpointFileError, match="empty"):
            reader.build_checkpointer(Net(), _cfg(tmp_path)).load(str(empty))


# --------------------------------------------------------------------------------------- safe formats
class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pkl_with_a_callable_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "R-50.pkl"
    with open(bad, "wb") as f:
        pickle.dump({"model": {"w": np.zeros(2)}, "__author__": "x", "payload": _Exploit(str(marker))}, f)
    with pytest.raises(UnsafePickleError, match=r"R-50\.pkl: it references (posix|os)\.system"):
        AtomicDetectionCheckpointer(Net(), str(tmp_path)).load(str(bad))
    assert not marker.exists()
    with pytest.raises(UnsafePickleError):
        safe_pickle_load(str(bad))
    assert not marker.exists()


def test_pth_with_a_callable_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "model.pth"
    torch.save({"model": {"head.weight": torch.zeros(3, 5)}, "x": _Exploit(str(marker))}, str(bad))
    with pytest.raises(CheckpointFileError, match=r"refusing to load .*model\.pth.*weights_only=True"):
        AtomicDetectionCheckpointer(Net(), str(tmp_path)).load(str(bad))
    assert not marker.exists()


def test_real_format_model_zoo_pkl_still_loads(tmp_path):
    """detectron2 model-zoo layout: {"model": {name: ndarray}, "__author__": ...}, protocol 2 like the
    published files, with float32 arrays, an int64 array and numpy scalars."""
    source = Net()
    blobs = {k: v.detach().numpy().copy() for k, v in source.state_dict().items()}
    blobs["extra_counter"] = np.array([3], dtype=np.int64)
    payload = {"model": blobs, "__author__": "Detectron2 Model Zoo", "matching_heuristics": np.bool_(False),
               "meta": {"lr": np.float64(0.02), "steps": [1, 2], "name": "R-50"}}
    path = tmp_path / "model_final_abc.pkl"
    with open(path, "wb") as f:
        pickle.dump(payload, f, protocol=2)
    loaded = safe_pickle_load(str(path))
    assert loaded["meta"]["name"] == "R-50" and loaded["meta"]["lr"] == 0.02
    target = Net()
    AtomicDetectionCheckpointer(target, str(tmp_path)).load(str(path))
    for k, v in source.state_dict().items():
        assert torch.equal(target.state_dict()[k], v)


def test_caffe2_style_pkl_without_author_loads_by_heuristics(tmp_path):
    source = Net()
    blobs = {k: v.detach().numpy().copy() for k, v in source.state_dict().items()}
    blobs["head.weight_momentum"] = np.zeros((3, 5), dtype=np.float32)  # dropped, as detectron2 does
    path = tmp_path / "imagenet.pkl"
    with open(path, "wb") as f:
        pickle.dump({"blobs": blobs}, f, protocol=2)
    target = Net()
    AtomicDetectionCheckpointer(target, str(tmp_path)).load(str(path))
    assert torch.equal(target.backbone.weight, source.backbone.weight)


# --------------------------------------------------------------------------------------- weights that fit
@pytest.mark.parametrize("trainer", [_D2, _ReID], ids=["detectron2", "fastreid"])
def test_eval_only_refuses_a_checkpoint_of_another_architecture(tmp_path, trainer):
    path, _ = _saved(tmp_path, Other())
    checkpointer = trainer.build_checkpointer(Net(), _cfg(tmp_path))
    with pytest.raises(IncompatibleCheckpointError, match=r"none of the model's 4 parameters.*model_0000009"):
        checkpointer.load(path, checkpointables=[])


@pytest.mark.parametrize("trainer", [_D2, _ReID], ids=["detectron2", "fastreid"])
def test_eval_only_needs_every_parameter_unless_allow_listed(tmp_path, trainer):
    path, _ = _saved(tmp_path, Net(classes=7))  # another number of classes: head shapes differ
    with pytest.raises(IncompatibleCheckpointError,
                       match=r"2 of its 4 parameters.*head\.bias \(shape \(7,\) in the file, \(3,\) in the "
                             r"model\).*MODEL\.WEIGHTS_REINIT"):
        trainer.build_checkpointer(Net(), _cfg(tmp_path)).load(path, checkpointables=[])
    model = Net()
    trainer.build_checkpointer(model, _cfg(tmp_path, r"^head\.")).load(path, checkpointables=[])
    # a backbone-only file is refused for evaluation too
    backbone_only = tmp_path / "backbone.pth"
    torch.save({"model": {k: v for k, v in Net().state_dict().items() if k.startswith("backbone")}},
               str(backbone_only))
    with pytest.raises(IncompatibleCheckpointError, match="head.weight"):
        trainer.build_checkpointer(Net(), _cfg(tmp_path)).load(str(backbone_only), checkpointables=[])


def test_training_from_backbone_weights_still_works_but_full_checkpoints_must_fit(tmp_path):
    class Trainer(AtomicCheckpointing):
        pass

    backbone_only = tmp_path / "R-50.pkl"  # an ImageNet-style file: backbone tensors only
    with open(backbone_only, "wb") as f:
        backbone = {k: v.numpy() for k, v in Net().state_dict().items() if k.startswith("backbone")}
        pickle.dump({"model": backbone, "__author__": "test"}, f)
    model = Net()
    training = Trainer.build_checkpointer(model, _cfg(tmp_path), strict=None)  # what GenericTrainer uses
    training.resume_or_load(str(backbone_only), resume=False)  # head stays initialised: no error

    # a full-model checkpoint (it records its iteration) that does not fit is an error even for training
    path, _ = _saved(tmp_path, Net(classes=7), name="other_run")
    with pytest.raises(IncompatibleCheckpointError, match="other_run.pth does not fit"):
        Trainer.build_checkpointer(Net(), _cfg(tmp_path), strict=None).resume_or_load(path, resume=False)
    # nothing at all that fits is an error in every mode
    other, _ = _saved(tmp_path, Other(), name="other_arch")
    with pytest.raises(IncompatibleCheckpointError, match="none of the model's"):
        Trainer.build_checkpointer(Net(), _cfg(tmp_path), strict=None).resume_or_load(other, resume=False)


def test_trainer_checkpointers_made_atomic_are_strict_on_full_checkpoints(tmp_path):
    """detectron2/FastReID DefaultTrainer checkpointers made atomic in build_hooks: 'auto' strictness."""
    path, _ = _saved(tmp_path, Net(classes=7))
    ckpt = make_atomic(DetectionCheckpointer(Net(), str(tmp_path)))
    with pytest.raises(IncompatibleCheckpointError):
        ckpt.resume_or_load(path, resume=False)


def test_eval_only_through_the_front_door_refuses_weights_that_do_not_fit(tmp_path):
    """train_or_evaluate (every train_net.py) loads --eval-only weights through build_checkpointer: strict."""
    import argparse

    from shared.engine import GenericTrainer, train_or_evaluate

    class Toy(GenericTrainer):
        @classmethod
        def build_model(cls, cfg):
            return Net()

        @classmethod
        def test(cls, cfg, model):
            return {"toy": {"ok": 1.0}}

    args = argparse.Namespace(eval_only=True, resume=False)
    cfg = _cfg(tmp_path)
    cfg.MODEL.WEIGHTS, _ = _saved(tmp_path, Other())
    with pytest.raises(IncompatibleCheckpointError, match="none of the model's"):
        train_or_evaluate(Toy, cfg, args)
    cfg.MODEL.WEIGHTS, _ = _saved(tmp_path, Net(), name="good")
    assert train_or_evaluate(Toy, cfg, args) == {"toy": {"ok": 1.0}}
