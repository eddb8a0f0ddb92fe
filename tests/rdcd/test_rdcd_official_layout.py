"""The student is wired and named as the official RDCD code (rdcd/models/model.py, get_encoder; moco.py):
an official Lightning checkpoint's state_dict, built here from torchvision / timm's own modules with the
official key prefixes and shapes, loads with zero missing or unexpected keys, and q = L2(projector(raw)).
Weight files are read with weights_only=True: a file that carries a pickled callable is refused."""

import argparse
import os
import pickle

import rdcd  # noqa: F401
import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision

from rdcd.config import BASE_CONFIG, add_rdcd_config
from rdcd.modeling import build_model
from rdcd.modeling.networks import GeM, load_network_weights, read_state_dict
from rdcd.modeling.student import Student, load_student_weights, official_rdcd_to_ours
from shared.engine import build_cfg

KD_DIM, DIM, QUEUE = 512, 64, 32


def _official_backbone(name):
    """The official get_encoder backbone, built independently of our code (torchvision / timm directly)."""
    if name == "efficientnet_b0":
        net = torchvision.models.efficientnet_b0(num_classes=KD_DIM)
    elif name == "mobilenet_v3_large":
        net = torchvision.models.mobilenet_v3_large(num_classes=KD_DIM)
    else:
        net = timm.create_model("fastvit_t12", num_classes=0)
        net.head.global_pool = GeM(3.0)
        net.head.fc = torch.nn.Linear(1024, KD_DIM)
        return net
    net.avgpool = GeM(3.0)
    return net


def _official_checkpoint(name, seed=0):
    """An official RDCD Lightning checkpoint: state_dict of RDCD(LightningModule) = model (MoCo: encoder_q,
    encoder_k, queue [dim, K], queue_ptr [1]) + teacher (TeacherNetwork: backbone = resnet50(512))."""
    torch.manual_seed(seed)
    backbone = _official_backbone(name)
    projector = torch.nn.Linear(KD_DIM, DIM)
    torch.nn.init.normal_(projector.bias, std=0.5)  # a visible bias: the two wirings then differ
    proj_prefix = "projector.0." if name == "fastvit_t12" else "projector."
    state = {}
    for encoder in ("encoder_q", "encoder_k"):
        state.update({f"model.{encoder}.backbone.{k}": v.clone() for k, v in backbone.state_dict().items()})
        state.update(
            {f"model.{encoder}.{proj_prefix}{k}": v.clone() for k, v in projector.state_dict().items()}
        )
    state["model.queue"] = F.normalize(torch.randn(DIM, QUEUE), dim=0)
    state["model.queue_ptr"] = torch.zeros(1, dtype=torch.long)
    teacher = torchvision.models.resnet50(num_classes=KD_DIM)
    state.update({f"teacher.backbone.{k}": v for k, v in teacher.state_dict().items()})
    checkpoint = {
        "epoch": 99,
        "global_step": 390599,
        "state_dict": state,
        "hyper_parameters": {"args": argparse.Namespace(backbone=name, dim=DIM), "train_steps": 3906},
    }
    return checkpoint, backbone, projector


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenet_v3_large", "fastvit_t12"])
def test_official_checkpoint_loads_with_no_missing_or_unexpected_key(tmp_path, name):
    checkpoint, backbone, projector = _official_checkpoint(name)
    path = str(tmp_path / "epoch=99-step=390599.ckpt")
    torch.save(checkpoint, path)
    student = Student(name, KD_DIM, DIM)
    official = {
        k[len("model.encoder_q.") :]: v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith("model.encoder_q.")
    }
    assert {k: tuple(v.shape) for k, v in student.state_dict().items()} == {
        k: tuple(v.shape) for k, v in official.items()
    }  # same names, same shapes: nothing missing or extra
    load_student_weights(student, path)  # strict: raises on any missing / unexpected / mismatched key
    for key, value in student.state_dict().items():
        assert torch.equal(value, official[key]), key

    # the wiring: q = L2(projector(raw backbone output)), computed with the official modules
    student.eval(), backbone.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        raw = backbone(x)
        expected = F.normalize(projector(raw), dim=1)
        other_wiring = F.normalize(projector(F.normalize(raw, dim=1)), dim=1)  # the previous, wrong one
        q = student(x)
    torch.testing.assert_close(q, expected, atol=1e-5, rtol=1e-5)
    assert (q - other_wiring).abs().max() > 1e-3  # the test can tell the two wirings apart


def test_official_checkpoint_renames_into_the_rdcd_model():
    checkpoint, _, _ = _official_checkpoint("efficientnet_b0")
    cfg = build_cfg(
        add_rdcd_config,
        BASE_CONFIG,
        ["MODEL.RDCD.DIM", str(DIM), "MODEL.RDCD.MOCO.QUEUE", str(QUEUE), "MODEL.RDCD.LOSS.KD_QUEUE", "8"],
    )
    model = build_model(cfg)
    ours = official_rdcd_to_ours(checkpoint["state_dict"])
    result = model.load_state_dict(ours, strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == [
        "relational_kd.teacher_queue.features",
        "relational_kd.teacher_queue.pointer",
    ]  # Pbank was never published
    assert torch.equal(model.key_queue.features, checkpoint["state_dict"]["model.queue"].t())


def test_teacher_bn_modes():
    def model_for(mode):
        cfg = build_cfg(
            add_rdcd_config,
            BASE_CONFIG,
            [
                "MODEL.RDCD.TEACHER",
                "sscd_r18",
                "MODEL.RDCD.STUDENT",
                "resnet18",
                "MODEL.RDCD.KD_DIM",
                "32",
                "MODEL.RDCD.DIM",
                "8",
                "MODEL.RDCD.MOCO.QUEUE",
                "16",
                "MODEL.RDCD.LOSS.KD_QUEUE",
                "16",
                "MODEL.RDCD.TEACHER_BN",
                mode,
            ],
        )
        return build_model(cfg).train()

    frozen, batch = model_for("frozen"), model_for("batch")
    assert not frozen.teacher.training and batch.teacher.training
    batch.teacher.load_state_dict(frozen.teacher.state_dict())
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        t_frozen, t_batch = frozen.teacher(x), batch.teacher(x)
        assert not torch.allclose(t_frozen, t_batch, atol=1e-3)  # running vs batch statistics
        torch.testing.assert_close(t_batch, batch.teacher.train()(x))
        frozen.teacher.train()
        torch.testing.assert_close(frozen.teacher(x), t_batch)
    assert not any(p.requires_grad for p in batch.teacher.parameters())


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_weights_file_with_a_pickled_callable_is_refused(tmp_path):
    path = str(tmp_path / "evil.pth")
    with open(path, "wb") as f:
        pickle.dump({"fc.weight": torch.zeros(2, 2), "payload": _RunsCode()}, f)
    with pytest.raises(ValueError, match="refused to load .*evil.pth"):
        read_state_dict(path)
    torch.save({"model": {"fc.weight": torch.zeros(2)}, "hook": os.system}, tmp_path / "evil2.pth")
    with pytest.raises(ValueError, match="refused to load .*evil2.pth"):
        load_network_weights(torchvision.models.resnet18(), str(tmp_path / "evil2.pth"))
    with pytest.raises(ValueError, match="refused to load"):
        load_student_weights(Student("resnet18", 16, 8), path)


def test_model_weights_may_name_an_official_checkpoint(tmp_path):
    """--eval-only MODEL.WEIGHTS epoch=99-step=390599.ckpt: the trainer's checkpointer renames it."""
    from rdcd.trainer import RDCDTrainer

    checkpoint, backbone, projector = _official_checkpoint("efficientnet_b0", seed=1)
    path = str(tmp_path / "epoch=99-step=390599.ckpt")
    torch.save(checkpoint, path)
    cfg = build_cfg(
        add_rdcd_config,
        BASE_CONFIG,
        [
            "MODEL.RDCD.DIM",
            str(DIM),
            "MODEL.RDCD.MOCO.QUEUE",
            str(QUEUE),
            "MODEL.RDCD.LOSS.KD_QUEUE",
            "8",
            "OUTPUT_DIR",
            str(tmp_path),
        ],
    )
    model = RDCDTrainer.build_model(cfg)
    RDCDTrainer.build_checkpointer(model, cfg).load(path)
    model.eval(), backbone.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), F.normalize(projector(backbone(x)), dim=1), atol=1e-5, rtol=1e-5)
    for name in ("bad.ckpt", "bad.pth"):  # ours: a clear ValueError; fvcore's torch.load: UnpicklingError
        torch.save({"model": model.state_dict(), "payload": _RunsCode()}, tmp_path / name)
        refused = "refused to load|Weights only load failed"
        with pytest.raises((ValueError, pickle.UnpicklingError), match=refused):
            RDCDTrainer.build_checkpointer(model, cfg).load(str(tmp_path / name))


def test_fastvit_student_accepts_local_timm_imagenet_weights(tmp_path):
    """The official FastViT student starts from timm's ImageNet weights: a local copy loads into the backbone,
    its 1000-class head skipped (our 1024 -> 512 head kept)."""
    imagenet = timm.create_model("fastvit_t12", pretrained=False)  # 1000 classes, like timm's file
    torch.save(imagenet.state_dict(), tmp_path / "fastvit_t12.pth")
    student = Student("fastvit_t12", KD_DIM, DIM)
    head = student.backbone.head.fc.weight.detach().clone()
    load_student_weights(student, str(tmp_path / "fastvit_t12.pth"))
    for (name, ours), theirs in zip(student.backbone.stem.named_parameters(), imagenet.stem.parameters()):
        assert torch.equal(ours, theirs), name
    assert torch.equal(student.backbone.head.fc.weight, head)
    assert not any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in student.modules())  # no dropout
