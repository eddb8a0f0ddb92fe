"""Backbone presets match their weights: each weights format loads into its preset's model with zero missing
or unexpected backbone keys, and each preset's pixel format / mean / std / stride is the one its weights
need."""

import importlib.util
import os
import pickle

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from shared.engine import build_cfg
from simd.config import add_simd_config
from simd.modeling.backbone import EvalModeBatchNorm2d
from simd.presets import BACKBONE_PRESETS, preset_opts

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "projects", "SimD", "configs")
TOOLS = os.path.join(os.path.dirname(__file__), "..", "..", "projects", "SimD", "tools")
SMALL = ["MODEL.ROI_HEADS.NUM_CLASSES", "8", "MODEL.DEVICE", "cpu"]

# the facts each preset must carry (torchvision's and MSRA's published preprocessing)
EXPECTED = {
    "torchvision": ("RGB", [123.675, 116.28, 103.53], [58.395, 57.12, 57.375], False),
    "msra": ("BGR", [103.53, 116.28, 123.675], [1.0, 1.0, 1.0], True),
}


def _cfg(config, preset=None):
    opts = SMALL + (preset_opts(preset) if preset else [])
    return build_cfg(add_simd_config, os.path.join(CONFIGS, config), opts)


def _backbone_incompatible(cfg, weights):
    model = build_model(cfg)
    checkpointer = DetectionCheckpointer(model)
    incompatible = checkpointer._load_model(checkpointer._load_file(weights))
    missing = [k for k in incompatible.missing_keys if k.startswith("backbone.bottom_up.")]
    unexpected = list(incompatible.unexpected_keys)
    return model, missing, unexpected


@pytest.mark.parametrize("preset", sorted(BACKBONE_PRESETS))
def test_preset_carries_the_preprocessing_of_its_weights(preset):
    cfg = _cfg("aitod/faster_rcnn_R_50_FPN_1x_iou.yaml", preset)
    fmt, mean, std, stride_in_1x1 = EXPECTED[preset]
    assert cfg.INPUT.FORMAT == fmt and cfg.MODEL.RESNETS.STRIDE_IN_1X1 == stride_in_1x1
    assert cfg.MODEL.PIXEL_MEAN == pytest.approx(mean) and cfg.MODEL.PIXEL_STD == pytest.approx(std)


@pytest.mark.parametrize(
    "config",
    ["Base-SimD-RCNN-FPN.yaml", "Base-SimD-RetinaNet-FPN.yaml", "visdrone/faster_rcnn_R_50_FPN_1x_simd.yaml"],
)
def test_shipped_configs_default_to_the_official_torchvision_preset(config):
    cfg = _cfg(config)
    for key, value in BACKBONE_PRESETS["torchvision"].items():
        node = cfg
        for part in key.split("."):
            node = getattr(node, part)
        if key == "MODEL.BACKBONE.NAME" and "RetinaNet" in config:
            value = "build_retinanet_resnet_fpn_backbone_bn_eval"
        assert node == (pytest.approx(value) if isinstance(value, list) else value), key


def test_torchvision_weights_convert_and_load_with_no_missing_backbone_key(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    state = torchvision.models.resnet50(weights=None).state_dict()  # the real names and shapes
    torch.save(state, tmp_path / "resnet50.pth")
    tool = TOOLS + "/convert_torchvision_r50.py"
    spec = importlib.util.spec_from_file_location("convert_torchvision_r50", tool)
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    converter.main([str(tmp_path / "resnet50.pth"), str(tmp_path / "r50.pkl")])  # the CLI, in this process
    model, missing, unexpected = _backbone_incompatible(
        _cfg("aitod/faster_rcnn_R_50_FPN_1x_iou.yaml"), str(tmp_path / "r50.pkl")
    )
    assert missing == [] and unexpected == []
    bottom_up = model.backbone.bottom_up
    assert torch.equal(bottom_up.stem.conv1.weight, state["conv1.weight"])
    assert torch.equal(bottom_up.res5[2].conv3.norm.running_var, state["layer4.2.bn3.running_var"])
    assert torch.equal(bottom_up.res3[0].shortcut.weight, state["layer2.0.downsample.0.weight"])
    # BN after the frozen stages: statistics fixed (eval mode even in training), affine trainable
    norm = bottom_up.res3[0].conv1.norm
    model.train()
    assert isinstance(norm, EvalModeBatchNorm2d) and not norm.training and norm.weight.requires_grad
    before = norm.running_mean.clone()
    model.backbone(torch.randn(1, 3, 64, 64))
    assert torch.equal(norm.running_mean, before)


def _c2_name(name):
    """detectron2 ResNet name -> the Caffe2 name used in MSRA's R-50.pkl."""
    if name.startswith("stem.conv1.norm."):
        return "res_conv1_bn_" + {"weight": "s", "bias": "b"}[name.split(".")[-1]]
    if name == "stem.conv1.weight":
        return "conv1_w"
    stage, block, layer = name.split(".")[:3]
    prefix = f"{stage}_{block}_" + (
        "branch1" if layer == "shortcut" else "branch2" + "abc"[int(layer[-1]) - 1]
    )
    if ".norm." in name:
        return prefix + "_bn_" + {"weight": "s", "bias": "b"}[name.split(".")[-1]]
    return prefix + "_w"


def test_msra_pkl_loads_into_the_msra_preset_with_no_missing_backbone_key(tmp_path):
    cfg = _cfg("aitod/faster_rcnn_R_50_FPN_1x_iou.yaml", "msra")
    reference = build_model(cfg).backbone.bottom_up.state_dict()
    blobs = {
        _c2_name(k): v.numpy()
        for k, v in reference.items()
        if not k.endswith(("running_mean", "running_var"))
    }
    blobs["fc1000_w"], blobs["fc1000_b"] = torch.zeros(1000, 2048).numpy(), torch.zeros(1000).numpy()
    assert "res2_0_branch2a_bn_s" in blobs and "res5_2_branch2c_w" in blobs and "res3_0_branch1_w" in blobs
    with open(tmp_path / "R-50.pkl", "wb") as f:
        pickle.dump({"blobs": blobs}, f)
    model, missing, unexpected = _backbone_incompatible(cfg, str(tmp_path / "R-50.pkl"))
    assert missing == [] and [k for k in unexpected if not k.startswith("fc1000")] == []
    assert torch.equal(model.backbone.bottom_up.stem.conv1.weight, reference["stem.conv1.weight"])


CONFIG_FILES = sorted(
    os.path.relpath(os.path.join(d, f), CONFIGS)
    for d, _, files in os.walk(CONFIGS)
    for f in files
    if f.endswith(".yaml") and "synthetic" not in d
)


@pytest.mark.parametrize("config", CONFIG_FILES)
def test_every_preset_scales_with_the_number_of_gpus(config):
    from detectron2.engine import DefaultTrainer

    cfg = _cfg(config)
    assert cfg.SOLVER.REFERENCE_WORLD_SIZE >= 1
    scaled = DefaultTrainer.auto_scale_workers(cfg, 8 * cfg.SOLVER.REFERENCE_WORLD_SIZE)
    assert scaled.SOLVER.IMS_PER_BATCH == 8 * cfg.SOLVER.IMS_PER_BATCH
    assert scaled.SOLVER.BASE_LR == pytest.approx(8 * cfg.SOLVER.BASE_LR)
    assert scaled.SOLVER.MAX_ITER == round(cfg.SOLVER.MAX_ITER / 8)


def test_sodad_preset_is_the_official_config():
    from detectron2.engine import DefaultTrainer

    cfg = _cfg("sodad/faster_rcnn_R_50_FPN_1x_iou.yaml")
    rpn = cfg.MODEL.RPN
    assert (
        rpn.PRE_NMS_TOPK_TRAIN,
        rpn.POST_NMS_TOPK_TRAIN,
        rpn.PRE_NMS_TOPK_TEST,
        rpn.POST_NMS_TOPK_TEST,
    ) == (2000, 1000, 1000, 1000)
    assert (cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.BASE_LR, cfg.TEST.DETECTIONS_PER_IMAGE) == (16, 0.02, 200)
    one_gpu = DefaultTrainer.auto_scale_workers(cfg, 1)
    assert one_gpu.SOLVER.IMS_PER_BATCH == 2 and one_gpu.SOLVER.BASE_LR == pytest.approx(0.0025)
