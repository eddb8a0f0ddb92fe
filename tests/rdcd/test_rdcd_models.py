"""Descriptor networks, weight loading, the RDCD and SSCD meta-architectures, LARS."""

import copy
from pathlib import Path

import rdcd  # noqa: F401
import pytest
import torch
import torchvision

from rdcd.config import BASE_CONFIG, add_rdcd_config
from shared.engine import build_cfg
from rdcd.modeling import build_model, build_network, load_network_weights
from rdcd.modeling.distributed import shuffled_batch_forward
from rdcd.modeling.networks import GeM, ViTClsGeMDescriptor
from rdcd.solver import LARS


def test_gem_limits():
    x = torch.rand(2, 3, 4, 4) + 0.1
    assert torch.allclose(GeM(1.0)(x), x.mean(dim=(2, 3)), atol=1e-6)
    assert torch.allclose(GeM(60.0)(x), x.amax(dim=(2, 3)), rtol=0.05)


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenet_v3_large", "fastvit_t12"])
def test_student_networks_give_unit_descriptors(name):
    net = build_network(name, out_dim=32, gem_p=3.0).eval()
    out = net(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 32)
    assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)


def test_vit_descriptor_any_batch_and_input_size():
    net = ViTClsGeMDescriptor("vit_tiny_patch16_224", gem_p=3.0).eval()
    for batch, side in ((3, 32), (5, 48)):
        out = net(torch.randn(batch, 3, side, side))
        assert out.shape == (batch, 2 * 192)
        assert torch.allclose(out.norm(dim=1), torch.ones(batch), atol=1e-5)


def test_unknown_network_is_named():
    with pytest.raises(KeyError, match="resnet9000"):
        build_network("resnet9000", out_dim=8)


def test_sscd_teacher_loads_torchvision_layout_and_torchscript(tmp_path):
    reference = torchvision.models.resnet18(weights=None, num_classes=16)
    torch.save({"model": {"module." + k: v for k, v in reference.state_dict().items()}}, tmp_path / "tv.pth")
    teacher = build_network("sscd_r18", out_dim=16)
    load_network_weights(teacher, str(tmp_path / "tv.pth"))
    assert torch.equal(teacher.fc.weight, reference.fc.weight)
    assert torch.equal(teacher.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)

    teacher.eval()
    x = torch.randn(2, 3, 32, 32)
    torch.jit.trace(teacher, x).save(str(tmp_path / "scripted.pt"))
    other = build_network("sscd_r18", out_dim=16).eval()
    load_network_weights(other, str(tmp_path / "scripted.pt"))
    assert torch.allclose(other(x), teacher(x), atol=1e-6)

    with pytest.raises(ValueError, match="shape mismatches"):
        load_network_weights(build_network("sscd_r18", out_dim=8), str(tmp_path / "tv.pth"))


def test_efficientnet_student_has_the_official_torchvision_layout(tmp_path):
    """The EfficientNet-B0 student is torchvision's (official get_encoder): an ImageNet file (1000-class head)
    loads into its trunk with our 512-d head kept; a whole distilled student loads from one of our RDCD
    checkpoints."""
    from rdcd.modeling.student import Student, load_student_weights

    imagenet = torchvision.models.efficientnet_b0(weights=None)  # 1000 classes, like torchvision's file
    torch.save(imagenet.state_dict(), tmp_path / "efficientnet_b0_imagenet.pth")
    student = Student("efficientnet_b0", kd_dim=512, dim=64)
    head_before = student.backbone.classifier[1].weight.detach().clone()
    load_student_weights(student, str(tmp_path / "efficientnet_b0_imagenet.pth"))
    assert torch.equal(
        student.backbone.features[3][1].block[0][0].weight, imagenet.features[3][1].block[0][0].weight
    )
    assert torch.equal(student.backbone.classifier[1].weight, head_before)  # 1000-class head skipped

    model = build_model(_tiny_rdcd_cfg(STUDENT="efficientnet_b0"))
    torch.save({"model": model.state_dict(), "iteration": 3}, tmp_path / "model_final.pth")
    fresh = Student("efficientnet_b0", kd_dim=32, dim=8)
    load_student_weights(fresh, str(tmp_path / "model_final.pth"))
    model.eval(), fresh.eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(fresh(x), model(x), atol=1e-6)

    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "imagenet_r18.pth")
    with pytest.raises(ValueError, match="do not match"):  # a ResNet file is not an EfficientNet
        load_student_weights(Student("efficientnet_b0", 512, 64), str(tmp_path / "imagenet_r18.pth"))


def _tiny_rdcd_cfg(**rdcd_keys):
    cfg = build_cfg(add_rdcd_config, BASE_CONFIG)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.RDCD.TEACHER = "sscd_r18"
    cfg.MODEL.RDCD.KD_DIM = 32
    cfg.MODEL.RDCD.DIM = 8
    cfg.MODEL.RDCD.MOCO.QUEUE = 16
    cfg.MODEL.RDCD.LOSS.KD_QUEUE = 16
    for key, value in rdcd_keys.items():
        setattr(cfg.MODEL.RDCD, key, value)
    return cfg


def test_rdcd_train_step_single_process():
    model = build_model(_tiny_rdcd_cfg())
    model.train()
    assert model.teacher.training  # TEACHER_BN "batch" (the default, as the official Lightning run)
    teacher_before = copy.deepcopy(dict(model.teacher.named_parameters()))
    student_before = [p.detach().clone() for p in model.student.parameters()]
    key_before = [p.detach().clone() for p in model.key_encoder.parameters()]
    batch = {"view1": torch.randn(4, 3, 32, 32), "view2": torch.randn(4, 3, 32, 32)}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    losses = model(batch)
    assert set(losses) == {"loss_infonce", "loss_hard_negative", "loss_relational_kd"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    optimizer.step()
    assert int(model.key_queue.pointer) == 4 and int(model.relational_kd.teacher_queue.pointer) == 4
    for name, tensor in model.teacher.named_parameters():
        assert torch.equal(tensor, teacher_before[name]), name
    # the key encoder moved by (1 - m) towards the student *before* this step: theta_k = m theta_k + (1-m)
    # theta_q
    m = model.momentum
    for k_new, k_old, q_old in zip(model.key_encoder.parameters(), key_before, student_before):
        assert torch.allclose(k_new, m * k_old + (1 - m) * q_old, atol=1e-6)
    model.eval()
    q = model(torch.randn(3, 3, 32, 32))
    assert q.shape == (3, 8) and torch.allclose(q.norm(dim=1), torch.ones(3), atol=1e-5)


def test_rdcd_rejects_bad_batches():
    model = build_model(_tiny_rdcd_cfg()).train()
    with pytest.raises(TypeError, match="view1"):
        model(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="empty"):
        model({"view1": torch.zeros(0, 3, 32, 32), "view2": torch.zeros(0, 3, 32, 32)})


def test_shuffled_forward_restores_order():
    x = torch.randn(6, 5)
    assert torch.equal(shuffled_batch_forward(lambda t: t * 2, x), x * 2)


def test_sscd_train_step():
    cfg = build_cfg(add_rdcd_config, BASE_CONFIG)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = "SSCD"
    cfg.MODEL.SSCD.NETWORK = "sscd_r18"
    cfg.MODEL.SSCD.DIM = 16
    model = build_model(cfg).train()
    losses = model({"view1": torch.randn(3, 3, 32, 32), "view2": torch.randn(3, 3, 32, 32)})
    assert set(losses) == {"loss_infonce", "loss_entropy"}
    sum(losses.values()).backward()
    assert model.network.fc.weight.grad is not None
    cfg.MODEL.META_ARCHITECTURE = "MoCoV9"
    with pytest.raises(KeyError, match="MoCoV9"):
        build_model(cfg)


def test_lars_single_step_hand_computed():
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))  # ||w|| = 5
    b = torch.nn.Parameter(torch.tensor([1.0]))
    w.grad = torch.tensor([[0.0, 1.0]])  # ||g|| = 1
    b.grad = torch.tensor([2.0])
    LARS([w, b], lr=0.5, momentum=0.9, weight_decay=0.1, trust_coefficient=0.01, eps=0.0).step()
    ratio = 0.01 * 5 / (1 + 0.1 * 5)
    update = (torch.tensor([[0.0, 1.0]]) + 0.1 * torch.tensor([[3.0, 4.0]])) * ratio
    assert torch.allclose(w.detach(), torch.tensor([[3.0, 4.0]]) - 0.5 * update)
    assert torch.allclose(b.detach(), torch.tensor([1.0 - 0.5 * 2.0]))  # 1-D: plain SGD, no decay


@pytest.mark.parametrize(
    "config",
    sorted(str(p) for p in (Path(__file__).resolve().parents[2] / "projects/RDCD/configs").rglob("*.yaml")),
)
def test_every_config_merges_and_names_registered_parts(config):
    """Every shipped yaml builds with build_cfg(add_rdcd_config) (no unknown key), names known networks."""
    from detectron2.modeling import META_ARCH_REGISTRY
    from rdcd.modeling.networks import NETWORK_REGISTRY, STUDENT_BACKBONE_REGISTRY

    cfg = build_cfg(add_rdcd_config, config)
    assert cfg.MODEL.META_ARCHITECTURE in META_ARCH_REGISTRY
    network = cfg.MODEL.SSCD.NETWORK if cfg.MODEL.META_ARCHITECTURE == "SSCD" else cfg.MODEL.RDCD.TEACHER
    assert network in NETWORK_REGISTRY
    assert cfg.MODEL.RDCD.STUDENT in STUDENT_BACKBONE_REGISTRY


def test_demo_students_are_the_resnet18_configs():
    """The demo's default students (configs/synthetic/rdcd_r18_*.yaml) build and differ only in DIM."""
    base = Path(__file__).resolve().parents[2] / "projects/RDCD/configs/synthetic"
    dims = []
    for dim in (64, 256):
        cfg = build_cfg(add_rdcd_config, str(base / f"rdcd_r18_{dim}.yaml"))
        cfg.MODEL.RDCD.TEACHER_WEIGHTS = ""
        model = build_model(cfg).eval()
        dims.append(model(torch.randn(2, 3, 64, 64)).shape[1])
        assert cfg.MODEL.RDCD.STUDENT == "resnet18"
    assert dims == [64, 256]


def test_config_adder_only_adds_keys():
    """add_rdcd_config leaves every detectron2 default as it was (values for them live in Base-RDCD.yaml)."""
    from detectron2.config import get_cfg

    def flat(node, prefix=""):
        out = {}
        for key, value in node.items():
            out.update(
                flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
            )
        return out

    defaults = flat(get_cfg())
    cfg = get_cfg()
    add_rdcd_config(cfg)
    added = flat(cfg)
    assert {k: added[k] for k in defaults} == defaults
    assert "MODEL.RDCD.LOSS.KD_MODE" in added and "SOLVER.OPTIMIZER" in added


@pytest.mark.parametrize(
    "key, value, name",
    [
        ("MODEL.RDCD.LOSS.KD_MODE", "three_queue", "relational"),
        ("SOLVER.OPTIMIZER", "Adagrad", "optimizer"),
    ],
)
def test_fixed_choices_are_dicts_with_named_errors(key, value, name):
    from rdcd.modeling.relational import RELATIONAL_KD_MODES, build_relational_kd
    from rdcd.solver import OPTIMIZERS, build_optimizer

    assert set(RELATIONAL_KD_MODES) == {"one_queue", "two_queue"} and set(OPTIMIZERS) == {
        "SGD",
        "LARS",
        "AdamW",
    }
    cfg = build_cfg(add_rdcd_config, BASE_CONFIG)
    with pytest.raises(KeyError, match=f"{key}.*{value}.*choose one of"):
        if name == "relational":
            build_relational_kd(value, 4, 8, 0.1)
        else:
            cfg.SOLVER.OPTIMIZER = value
            build_optimizer(cfg, torch.nn.Linear(2, 2))
