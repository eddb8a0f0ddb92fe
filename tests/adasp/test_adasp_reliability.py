"""Bad input is refused before training, naming its cause: config values, schedule lengths, Market-1501-style
file names, test sets without queries; SEED makes runs reproducible."""
import json
import os
from pathlib import Path

import pytest
import torch

import adasp  # noqa: F401
from adasp.config import add_adasp_config
from adasp.datasets import SYNTHETIC_SUBDIR, load_reid_dataset
from adasp.trainer import AdaSPTrainer, check_schedule_length
from shared.datasets.synthetic_reid import SyntheticReIDSpec, generate_synthetic_market1501
from shared.engine import build_cfg
from shared.engine.validation import ConfigValueError

PROJECT = Path(__file__).resolve().parents[2] / "projects" / "AdaSP"
SYNTHETIC_CONFIG = str(PROJECT / "configs" / "Synthetic" / "adasp_R18.yml")
TINY = SyntheticReIDSpec(num_train_ids=6, num_test_ids=4, num_distractors=2, num_junk=1, seed=5)
TINY_OPTS = ["INPUT.SIZE_TRAIN", "[32, 16]", "INPUT.SIZE_TEST", "[32, 16]", "SOLVER.IMS_PER_BATCH", "16",
             "DATALOADER.NUM_WORKERS", "0", "SOLVER.MAX_EPOCH", "1", "TEST.EVAL_PERIOD", "1",
             "SOLVER.CHECKPOINT_PERIOD", "1", "SOLVER.WARMUP_ITERS", "2", "TEST.IMS_PER_BATCH", "64",
             "SOLVER.SCHED", "MultiStepLR", "MODEL.BACKBONE.DEPTH", "18x", "MODEL.BACKBONE.FEAT_DIM", "512"]


def _cfg(*opts, config=""):
    return build_cfg(add_adasp_config, config, ["MODEL.DEVICE", "cpu", *opts], framework="fastreid")


# ---------------------------------------------------------------- config values, refused by build_cfg
@pytest.mark.parametrize("value", ["0.0", "-0.04"])
def test_temperature_must_be_positive(value):
    with pytest.raises(ConfigValueError, match=r"^MODEL\.LOSSES\.ADASP\.TEMP="):
        _cfg("MODEL.LOSSES.ADASP.TEMP", value)


def test_scale_must_not_be_negative():
    with pytest.raises(ConfigValueError, match=r"^MODEL\.LOSSES\.ADASP\.SCALE=-0\.1"):
        _cfg("MODEL.LOSSES.ADASP.SCALE", "-0.1")
    assert _cfg("MODEL.LOSSES.ADASP.SCALE", "0.0").MODEL.LOSSES.ADASP.SCALE == 0.0  # 0 switches it off


def test_type_must_be_a_known_rule():
    with pytest.raises(ConfigValueError, match=r"^MODEL\.LOSSES\.ADASP\.TYPE='sp-x': must be one of"):
        _cfg("MODEL.LOSSES.ADASP.TYPE", "sp-x")
    assert _cfg("MODEL.LOSSES.ADASP.TYPE", "SP-LH").MODEL.LOSSES.ADASP.TYPE == "SP-LH"  # the loss lower-cases


def test_max_epoch_must_be_positive():
    with pytest.raises(ConfigValueError, match=r"^SOLVER\.MAX_EPOCH=0"):
        _cfg("SOLVER.MAX_EPOCH", "0")


def test_cosine_schedule_longer_than_its_delay():
    """FastReID: T_max = MAX_EPOCH - max(warm-up epochs, DELAY_EPOCHS) = 0 -> ZeroDivisionError mid-run."""
    with pytest.raises(ConfigValueError, match=r"SOLVER\.MAX_EPOCH=30: must exceed SOLVER\.DELAY_EPOCHS=30"):
        _cfg("SOLVER.SCHED", "CosineAnnealingLR", "SOLVER.MAX_EPOCH", "30", "SOLVER.DELAY_EPOCHS", "30")
    with pytest.raises(ConfigValueError, match=r"SOLVER\.MAX_EPOCH=1: .*SOLVER\.WARMUP_ITERS=20"):
        _cfg("SOLVER.MAX_EPOCH", "1", config=SYNTHETIC_CONFIG)  # cosine, 20 warm-up iterations
    _cfg("SOLVER.SCHED", "MultiStepLR", "SOLVER.MAX_EPOCH", "1", "SOLVER.DELAY_EPOCHS", "30")  # steps: fine


def test_cosine_schedule_longer_than_its_warmup_in_epochs():
    """The warm-up in epochs needs the training-set size: checked when the trainer builds its scheduler."""
    cfg = _cfg("SOLVER.SCHED", "CosineAnnealingLR", "SOLVER.MAX_EPOCH", "3", "SOLVER.DELAY_EPOCHS", "0",
               "SOLVER.WARMUP_ITERS", "25")
    with pytest.raises(ConfigValueError, match=r"SOLVER\.MAX_EPOCH=3: .*WARMUP_ITERS=25 / 10 iterations"):
        check_schedule_length(cfg, iters_per_epoch=10)  # ceil(25 / 10) = 3 warm-up epochs
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ConfigValueError, match=r"SOLVER\.MAX_EPOCH=3"):
        AdaSPTrainer.build_lr_scheduler(cfg, optimizer, 10)
    check_schedule_length(cfg, iters_per_epoch=13)  # 2 warm-up epochs: one cosine epoch left
    with pytest.raises(ConfigValueError, match=r"SOLVER\.IMS_PER_BATCH=.*larger than the training set"):
        check_schedule_length(cfg, iters_per_epoch=0)


# ---------------------------------------------------------------- Market-1501-style file names
def _market(root: Path, query=("0001_c2s1_000101_00.jpg",), folder="Market-1501-v15.09.15", **extra):
    """A Market-1501 layout of empty files (the loaders only read names)."""
    base = root / folder
    files = {"bounding_box_train": ["0001_c1s1_000001_00.jpg", "0002_c3s1_000002_00.jpg"],
             "query": list(query),
             "bounding_box_test": ["0001_c4s1_000201_00.jpg", "-1_c1s1_000301_00.jpg",
                                   "0000_c5s1_0004_00.jpg"]}
    for split, names in files.items():
        (base / split).mkdir(parents=True, exist_ok=True)
        for name in names + list(extra.get(split, ())):
            (base / split / name).write_bytes(b"")
    return base


@pytest.mark.parametrize("bad_name, message", [
    ("garbage.jpg", r"does not follow the pattern '<person id>_c<camera>\.\.\.jpg' \(e\.g\. '0002_c1s1"),
    ("0007_s1_000001_00.jpg", r"does not follow the pattern"),
    ("0001_c7s1_000001_00.jpg", r"camera c7 is outside c1\.\.c6"),
    ("2000_c1s1_000001_00.jpg", r"person id 2000 is outside \[0, 1501\]"),
])
def test_market_names_that_do_not_parse_name_the_file(tmp_path, monkeypatch, bad_name, message):
    _market(tmp_path, query=("0001_c2s1_000101_00.jpg", bad_name))
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path))
    with pytest.raises(ValueError, match=message) as info:
        load_reid_dataset("Market1501").query
    assert os.path.join("query", bad_name) in str(info.value)


def test_market_upper_case_jpg_is_read_and_other_files_skipped(tmp_path, monkeypatch):
    _market(tmp_path, bounding_box_train=["0003_c2s2_000003_01.JPG", "Thumbs.db"])
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path))
    dataset = load_reid_dataset("Market1501")
    names = [os.path.basename(item[0]) for item in dataset.train]
    assert names == ["0001_c1s1_000001_00.jpg", "0002_c3s1_000002_00.jpg", "0003_c2s2_000003_01.JPG"]
    assert dataset.train[2][1:] == ("market1501_3", "market1501_1")  # fastreid's train-id prefixes
    gallery = sorted((os.path.basename(p), pid, cam) for p, pid, cam in dataset.gallery)
    assert gallery == [("0000_c5s1_0004_00.jpg", 0, 4), ("0001_c4s1_000201_00.jpg", 1, 3)]  # junk -1 dropped


def test_duke_camera_out_of_range_names_the_file(tmp_path, monkeypatch):
    _market(tmp_path, query=("0005_c9_f0000001.jpg",), folder="DukeMTMC-reID")
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path))
    with pytest.raises(ValueError, match=r"0005_c9_f0000001\.jpg: camera c9 is outside c1\.\.c8"):
        load_reid_dataset("DukeMTMC").query


# ---------------------------------------------------------------- test sets, refused before training
def test_test_set_without_queries_is_refused_before_training(tmp_path, monkeypatch):
    _market(tmp_path / SYNTHETIC_SUBDIR, query=())
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path))
    cfg = _cfg("OUTPUT_DIR", str(tmp_path / "out"), *TINY_OPTS, config=SYNTHETIC_CONFIG)
    with pytest.raises(ValueError, match=r"test set 'SyntheticMarket1501' \(DATASETS\.TESTS\) has 0 query"):
        AdaSPTrainer(cfg)
    assert not (tmp_path / "out" / "metrics.json").exists()  # nothing was trained


# ---------------------------------------------------------------- SEED
@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fastreid_datasets")
    generate_synthetic_market1501(str(root / SYNTHETIC_SUBDIR), TINY)
    return root


def _run(out_dir, seed):
    """(logged losses, final weights) of a 1-epoch run."""
    cfg = _cfg("OUTPUT_DIR", str(out_dir), "SEED", str(seed), *TINY_OPTS, config=SYNTHETIC_CONFIG)
    os.makedirs(out_dir)  # fastreid's trainer writes config.yaml there
    trainer = AdaSPTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    with open(os.path.join(out_dir, "metrics.json")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    weights = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    return [r["total_loss"] for r in records if "total_loss" in r], weights


def test_same_seed_gives_identical_losses(tiny_root, tmp_path, monkeypatch):
    """fastreid seeds nothing: without SEED the model initialisation and the P x K sampler differ per run."""
    monkeypatch.setenv("FASTREID_DATASETS", str(tiny_root))
    torch.manual_seed(123)  # a different global state before each run must not matter
    first, first_weights = _run(tmp_path / "a", seed=7)
    torch.manual_seed(456)
    second, second_weights = _run(tmp_path / "b", seed=7)
    other, other_weights = _run(tmp_path / "c", seed=8)
    assert len(first) >= 1 and first == second
    assert all(torch.equal(first_weights[k], second_weights[k]) for k in first_weights)
    assert other != first  # the seed is what makes them equal
    assert not all(torch.equal(first_weights[k], other_weights[k]) for k in first_weights)
