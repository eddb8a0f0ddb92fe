"""Values that used to fail late, misleadingly or not at all are errors naming the key or the file, raised
when the config is built (before any data or model).

Before: ``IMS_PER_BATCH 0`` "must be divisible by the number of gpus"; ``MAX_ITER 0`` an fvcore schedule
message; ``CHECKPOINT_PERIOD 0`` a ZeroDivisionError at the first iteration; ``MIN_SIZE_TRAIN 0`` "no GT box";
an AdaSP batch that is not a multiple of ``NUM_INSTANCE`` hung in fastreid's ``BalancedIdentitySampler``;
``NUM_INSTANCE 1`` trained to loss ~1e-8; ``--num-gpus -1`` was accepted; a ``_BASE_`` cycle was a
RecursionError, an empty file a TypeError, a ``.py`` file an AttributeError, none naming the file.
"""
from pathlib import Path

import pytest

from shared.compat.safe_config import ConfigFileError
from shared.engine import build_cfg
from shared.engine.launch import launch
from shared.engine.validation import ConfigValueError

ROOT = Path(__file__).resolve().parents[2]
ADASP_CONFIG = str(ROOT / "projects/AdaSP/configs/Synthetic/adasp_R18.yml")


def _simd(*opts):
    from simd.config import add_simd_config

    return build_cfg(add_simd_config, "", list(opts))


def _adasp(*opts):
    from adasp.config import add_adasp_config

    return build_cfg(add_adasp_config, ADASP_CONFIG, list(opts), framework="fastreid")


@pytest.mark.parametrize("key, value", [
    ("SOLVER.IMS_PER_BATCH", "0"), ("SOLVER.IMS_PER_BATCH", "-2"), ("SOLVER.MAX_ITER", "0"),
    ("SOLVER.MAX_ITER", "-5"), ("SOLVER.CHECKPOINT_PERIOD", "0"), ("INPUT.MIN_SIZE_TRAIN", "(0,)"),
    ("INPUT.MIN_SIZE_TRAIN", "(640, 0)"), ("INPUT.MAX_SIZE_TRAIN", "0"), ("INPUT.MAX_SIZE_TEST", "0"),
    ("INPUT.MIN_SIZE_TEST", "-1"), ("TEST.EVAL_PERIOD", "-1"), ("DATALOADER.NUM_WORKERS", "-1"),
])
def test_detectron2_run_keys_are_checked_naming_the_key(key, value):
    with pytest.raises(ConfigValueError, match=f"^{key}="):
        _simd(key, value)


def test_detectron2_valid_edge_values_are_accepted():
    cfg = _simd("SOLVER.MAX_ITER", "1", "SOLVER.CHECKPOINT_PERIOD", "1", "INPUT.MIN_SIZE_TEST", "0",
                "TEST.EVAL_PERIOD", "0")
    assert cfg.SOLVER.MAX_ITER == 1 and cfg.INPUT.MIN_SIZE_TEST == 0


@pytest.mark.parametrize("key, value", [
    ("SOLVER.IMS_PER_BATCH", "0"), ("SOLVER.MAX_EPOCH", "0"), ("SOLVER.CHECKPOINT_PERIOD", "0"),
    ("INPUT.SIZE_TRAIN", "[256, 0]"), ("INPUT.SIZE_TEST", "[256]"), ("TEST.IMS_PER_BATCH", "0"),
])
def test_fastreid_run_keys_are_checked_naming_the_key(key, value):
    with pytest.raises(ConfigValueError, match=f"^{key}="):
        _adasp(key, value)


def test_identity_sampler_batch_not_a_multiple_of_num_instance_is_refused_instead_of_hanging():
    cfg = _adasp()
    assert cfg.DATALOADER.SAMPLER_TRAIN in ("BalancedIdentitySampler", "NaiveIdentitySampler")
    k = cfg.DATALOADER.NUM_INSTANCE
    with pytest.raises(ConfigValueError, match=rf"^SOLVER.IMS_PER_BATCH={3 * k + 1}: .*NUM_INSTANCE={k}"):
        _adasp("SOLVER.IMS_PER_BATCH", str(3 * k + 1))
    assert _adasp("SOLVER.IMS_PER_BATCH", str(3 * k)).SOLVER.IMS_PER_BATCH == 3 * k


def test_training_set_with_fewer_identities_than_a_batch_is_refused_instead_of_hanging():
    from adasp.trainer import check_identity_count

    cfg = _adasp()
    needed = cfg.SOLVER.IMS_PER_BATCH // cfg.DATALOADER.NUM_INSTANCE
    check_identity_count(cfg, needed)
    with pytest.raises(ConfigValueError, match=rf"at least .* = {needed} identities per batch, but "
                                               rf".* has {needed - 1} "):
        check_identity_count(cfg, needed - 1)


def test_adasp_needs_two_instances_per_identity():
    with pytest.raises(ConfigValueError, match="^DATALOADER.NUM_INSTANCE=1: must be >= 2 with AdaSPLoss"):
        _adasp("DATALOADER.NUM_INSTANCE", "1", "SOLVER.IMS_PER_BATCH", "8")


@pytest.mark.parametrize("kwargs, flag", [
    ({"num_gpus_per_machine": -1}, "--num-gpus"), ({"num_gpus_per_machine": 0}, "--num-gpus"),
    ({"num_gpus_per_machine": 1, "num_machines": 0}, "--num-machines"),
    ({"num_gpus_per_machine": 1, "num_machines": 2, "machine_rank": 2}, "--machine-rank"),
])
def test_launch_flags_are_checked(kwargs, flag):
    ran = []
    with pytest.raises(ValueError, match=f"^{flag} must be"):
        launch(ran.append, args=("x",), **kwargs)
    assert not ran


# ------------------------------------------------------------------------------------------- config files
def test_base_cycle_and_self_reference_name_the_files(tmp_path):
    a, b, me = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "me.yaml"
    a.write_text("_BASE_: b.yaml\n")
    b.write_text("_BASE_: [a.yaml]\n")
    me.write_text(f"_BASE_: {me}\n")
    with pytest.raises(ConfigFileError, match=f"_BASE_ cycle: {a} -> {b} -> {a}"):
        _simd_file(a)
    with pytest.raises(ConfigFileError, match=f"_BASE_ cycle: {me} -> {me}"):
        _simd_file(me)


def _simd_file(path):
    from simd.config import add_simd_config

    return build_cfg(add_simd_config, str(path))


@pytest.mark.parametrize("name, text, message", [
    ("empty.yaml", "", "is empty"),
    ("comments.yaml", "# nothing here\n", "is empty"),
    ("train_net.py", "import os\nprint(os)\n", "is a Python file"),
    ("list.yaml", "- 1\n- 2\n", "the top level must be a mapping"),
    ("broken.yaml", "MODEL: {WEIGHTS: [\n", "is not valid yaml"),
])
def test_unusable_config_files_name_the_file(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigFileError, match=f"{path}.*{message}"):
        _simd_file(path)


def test_unusable_base_file_is_named(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    child = tmp_path / "child.yaml"
    child.write_text("_BASE_: empty.yaml\nSEED: 1\n")
    with pytest.raises(ConfigFileError, match=f"{tmp_path / 'empty.yaml'} is empty"):
        _simd_file(child)


def test_base_chains_still_merge_in_order(tmp_path):
    (tmp_path / "a.yaml").write_text("SEED: 1\nSOLVER: {MAX_ITER: 7, BASE_LR: 0.5}\n")
    (tmp_path / "b.yaml").write_text("SEED: 2\n")
    child = tmp_path / "sub" / "child.yaml"
    child.parent.mkdir()
    child.write_text("_BASE_: [../a.yaml, ../b.yaml]\nSOLVER: {BASE_LR: 0.25}\n")
    cfg = _simd_file(child)
    assert (cfg.SEED, cfg.SOLVER.MAX_ITER, cfg.SOLVER.BASE_LR) == (2, 7, 0.25)
