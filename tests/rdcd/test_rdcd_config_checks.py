"""Every RDCD config value is checked when the config is built (before any data or model), the error naming
its key: one case per rule."""

import rdcd  # noqa: F401
import pytest

from rdcd.config import BASE_CONFIG, add_rdcd_config
from shared.engine import ConfigValueError, build_cfg

CASES = [
    # temperatures > 0
    ("MODEL.RDCD.LOSS.KD_TEMP", "-0.04"),
    ("MODEL.RDCD.LOSS.KD_TEMP", "0.0"),
    ("MODEL.RDCD.MOCO.TEMP", "0.0"),
    ("MODEL.SSCD.INFONCE_TEMP", "-1.0"),
    # momentum in [0, 1)
    ("MODEL.RDCD.MOCO.MOMENTUM", "1.5"),
    ("MODEL.RDCD.MOCO.MOMENTUM", "1.0"),
    ("MODEL.RDCD.MOCO.MOMENTUM", "-0.1"),
    # sizes > 0
    ("MODEL.RDCD.MOCO.QUEUE", "0"),
    ("MODEL.RDCD.LOSS.KD_QUEUE", "-5"),
    ("MODEL.RDCD.DIM", "0"),
    ("MODEL.RDCD.KD_DIM", "0"),
    ("MODEL.RDCD.GEM_P", "0.0"),
    ("TEST.COPY_DETECTION.K", "0"),
    ("INPUT.COPY_DETECTION.TRAIN_SIZE", "0"),
    # weights >= 0
    ("MODEL.RDCD.LOSS.KD_W", "-1.0"),
    ("MODEL.RDCD.LOSS.HN_W", "-5.0"),
    ("MODEL.RDCD.LOSS.MOCO_W", "-1.0"),
    ("MODEL.SSCD.ENTROPY_W", "-30.0"),
    ("TEST.COPY_DETECTION.BETA", "-1.0"),
    # names known
    ("MODEL.RDCD.TEACHER_BN", "frozn"),
    ("MODEL.RDCD.LOSS.KD_MODE", "three_queue"),
    ("SOLVER.OPTIMIZER", "Adagrad"),
    ("INPUT.COPY_DETECTION.AUGMENTATION", "fancy"),
    ("INPUT.COPY_DETECTION.TEST_RESIZE", "long_side"),
    ("MODEL.META_ARCHITECTURE", "MoCoV9"),
    ("MODEL.RDCD.TEACHER", "resnet9000"),
    ("MODEL.RDCD.STUDENT", "mobilenetv3_large_100"),
    ("MODEL.SSCD.NETWORK", "vit_huge"),
]


@pytest.mark.parametrize("key, value", CASES)
def test_bad_value_is_refused_at_build_time_naming_its_key(key, value):
    with pytest.raises(ConfigValueError) as info:
        build_cfg(add_rdcd_config, BASE_CONFIG, [key, value])
    assert info.value.key == key
    assert str(info.value).startswith(key)


def test_defaults_and_every_boundary_value_are_accepted():
    build_cfg(
        add_rdcd_config,
        BASE_CONFIG,
        [
            "MODEL.RDCD.MOCO.MOMENTUM",
            "0.0",
            "MODEL.RDCD.LOSS.KD_W",
            "0.0",
            "MODEL.RDCD.LOSS.HN_W",
            "0.0",
            "MODEL.RDCD.TEACHER_BN",
            "frozen",
            "MODEL.META_ARCHITECTURE",
            "SSCD",
            "SOLVER.OPTIMIZER",
            "LARS",
        ],
    )
