"""Our BN-Inception: the pretrainedmodels parameter names and shapes (so its ImageNet file loads), the feature
map size, the weight-file checks, and the BGR input path of the BN-Inception presets."""
import os

import pytest
import torch

import das  # noqa: F401
from das.config import add_das_config
from das.modeling.bninception import BLOCKS, BNInception, block_out_channels, build_bninception
from das.trainer import DASTrainer

from shared.engine import build_cfg

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "projects", "DAS", "configs")


def test_parameter_names_and_shapes_of_the_pretrainedmodels_network():
    state = BNInception().state_dict()
    # names and shapes as in pretrainedmodels/models/bninception.py
    assert state["conv1_7x7_s2.weight"].shape == (64, 3, 7, 7)
    assert state["conv2_3x3.weight"].shape == (192, 64, 3, 3)
    assert state["inception_3a_pool_proj.weight"].shape == (32, 192, 1, 1)
    assert state["inception_3c_double_3x3_2_bn.running_var"].shape == (96,)
    assert state["inception_4e_double_3x3_1.weight"].shape == (256, 192, 3, 3)
    assert state["inception_5a_1x1.weight"].shape == (352, 1056, 1, 1)
    assert state["inception_5b_pool_proj.weight"].shape == (128, 1024, 1, 1)
    assert "inception_3c_1x1.weight" not in state and "inception_4e_pool_proj.weight" not in state
    convs = [k for k in state if k.endswith(".weight") and state[k].dim() == 4]
    assert len(convs) == 3 + 8 * 7 + 2 * 5  # stem, eight 7-conv blocks, the two 5-conv stride-2 blocks
    channels = 192
    for block in BLOCKS.values():
        channels = block_out_channels(block, channels)
    assert channels == 1024


def test_feature_map_of_a_224_image():
    model = BNInception().eval()
    with torch.no_grad():
        assert model.forward_features(torch.zeros(1, 3, 224, 224)).shape == (1, 1024, 7, 7)


def test_weights_load_from_a_pretrainedmodels_file(tmp_path):
    torch.manual_seed(0)
    source = BNInception()
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["last_linear.weight"], state["last_linear.bias"] = torch.zeros(1000, 1024), torch.zeros(1000)
    path = str(tmp_path / "bn_inception.pth")
    torch.save(state, path)
    torch.manual_seed(1)
    loaded = build_bninception(path)
    for key, value in source.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            torch.testing.assert_close(loaded.state_dict()[key], value)
    del state["inception_4a_1x1.weight"]
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"missing \['inception_4a_1x1.weight'\]"):
        build_bninception(path)
    with pytest.raises(FileNotFoundError, match="BACKBONE_WEIGHTS"):
        build_bninception(str(tmp_path / "absent.pth"))


def test_bninception_preset_builds_and_feeds_bgr():
    cfg = build_cfg(
        add_das_config,
        os.path.join(CONFIG_DIR, "CUB200", "multi_similarity_bninception512_table1.yaml"),
        ["MODEL.DEVICE", "cpu", "MODEL.DAS.NUM_CLASSES", "4", "MODEL.EMBEDDING.BACKBONE_WEIGHTS", ""],
    )  # the preset's ImageNet file is tested in tests/weights/test_weights_presets.py
    model = DASTrainer.build_model(cfg).eval()
    assert model.net.backbone.num_features == 1024 and model.net.head.out_features == 512
    rgb = torch.rand(2, 3, 64, 64)
    seen = {}
    model.net.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    with torch.no_grad():
        e = model.embed(rgb)
    assert e.shape == (2, 512)
    # the official transform: normalise RGB with (0.502, 0.4588, 0.4078) / 0.0039, then reverse the channels
    mean = torch.tensor([0.502, 0.4588, 0.4078]).view(1, 3, 1, 1)
    expected = ((rgb - mean) / 0.0039).flip(1)
    torch.testing.assert_close(seen["x"], expected, rtol=1e-5, atol=1e-3)
