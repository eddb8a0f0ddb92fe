"""End to end on a tiny synthetic set: train_net training, metrics.json, atomic checkpoints, resume,
eval-only; config files; missing-dataset errors."""
import glob
import importlib.util
import json
import os
from pathlib import Path

import pytest

import adasp  # noqa: F401
from adasp.config import add_adasp_config
from adasp.datasets import SYNTHETIC_SUBDIR, load_reid_dataset
from adasp.trainer import AdaSPTrainer
from shared.engine import AtomicCheckpointMixin, build_cfg
from shared.datasets.synthetic_reid import SyntheticReIDSpec, generate_synthetic_market1501

PROJECT = Path(__file__).resolve().parents[2] / "projects" / "AdaSP"
TINY = SyntheticReIDSpec(num_train_ids=6, num_test_ids=4, num_distractors=2, num_junk=1, seed=5)
TINY_OPTS = ["INPUT.SIZE_TRAIN", "[32, 16]", "INPUT.SIZE_TEST", "[32, 16]", "SOLVER.IMS_PER_BATCH", "16",
             "DATALOADER.NUM_WORKERS", "0", "SOLVER.MAX_EPOCH", "1", "TEST.EVAL_PERIOD", "1",
             "SOLVER.CHECKPOINT_PERIOD", "1", "SOLVER.WARMUP_ITERS", "2", "TEST.IMS_PER_BATCH", "64",
             "SOLVER.SCHED", "MultiStepLR"]


def _load_train_net():
    spec = importlib.util.spec_from_file_location("adasp_train_net", PROJECT / "train_net.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fastreid_datasets")
    generate_synthetic_market1501(str(root / SYNTHETIC_SUBDIR), TINY)
    return root


def test_train_resume_and_eval_only(dataset_root, tmp_path, monkeypatch):
    monkeypatch.setenv("FASTREID_DATASETS", str(dataset_root))
    train_net = _load_train_net()
    config = str(PROJECT / "configs" / "Synthetic" / "adasp_R18.yml")
    out = str(tmp_path / "run")
    args = train_net.default_argument_parser().parse_args(
        ["--config-file", config, "OUTPUT_DIR", out] + TINY_OPTS)
    results = train_net.main(args)
    assert set(results) >= {"Rank-1", "mAP", "mINP"}
    assert 0.0 <= results["mAP"] <= 100.0
    assert os.path.isfile(os.path.join(out, "model_final.pth"))
    assert open(os.path.join(out, "last_checkpoint")).read().strip() == "model_final.pth"
    assert not glob.glob(os.path.join(out, ".*.tmp"))  # atomic writes leave no temp files
    with open(os.path.join(out, "metrics.json")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    losses = [r["total_loss"] for r in records if "total_loss" in r]  # = loss_adasp (the only loss)
    assert losses and all(0 < v < 100 for v in losses)
    assert glob.glob(os.path.join(out, "events.out.tfevents.*"))

    # --resume continues after the saved epoch
    cfg = build_cfg(add_adasp_config, config, ["OUTPUT_DIR", out] + TINY_OPTS + ["SOLVER.MAX_EPOCH", "2"],
                    framework="fastreid")
    trainer = AdaSPTrainer(cfg)
    assert isinstance(trainer.checkpointer, AtomicCheckpointMixin)
    trainer.resume_or_load(resume=True)
    assert trainer.start_epoch == 1

    # --eval-only reproduces the final evaluation from the checkpoint
    eval_args = train_net.default_argument_parser().parse_args(
        ["--config-file", config, "--eval-only", "OUTPUT_DIR", str(tmp_path / "eval"),
         "MODEL.WEIGHTS", os.path.join(out, "model_final.pth")] + TINY_OPTS)  # classifier size not needed
    again = train_net.main(eval_args)
    assert again["mAP"] == pytest.approx(results["mAP"], abs=1e-6)


def test_missing_dataset_names_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="FASTREID_DATASETS"):
        load_reid_dataset("DukeMTMC")
    with pytest.raises(KeyError, match="unknown DATASETS.NAMES/TESTS entry 'Market1502'"):
        load_reid_dataset("Market1502")


def test_auto_device_and_amp_are_resolved_for_cpu():
    cfg = build_cfg(add_adasp_config, str(PROJECT / "configs" / "Market1501" / "mgn_R50-ibn_adasp.yml"),
                    framework="fastreid")
    assert cfg.MODEL.DEVICE in ("cpu", "cuda")
    if cfg.MODEL.DEVICE == "cpu":
        assert not cfg.SOLVER.AMP.ENABLED


def _fake_vehicleid(root: Path) -> None:
    base = root / "vehicleid"
    (base / "image").mkdir(parents=True)
    (base / "train_test_split").mkdir()
    (base / "train_test_split" / "train_list.txt").write_text("".join(f"{i} {i // 3}\n" for i in range(30)))
    (base / "train_test_split" / "test_list_800.txt").write_text(
        "".join(f"{i} {i // 4}\n" for i in range(100, 180)))


def test_vehicleid_split_seed_makes_the_random_split_reproducible(tmp_path, monkeypatch):
    import random

    _fake_vehicleid(tmp_path)
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path))
    random.seed(123)
    untouched = random.random()
    random.seed(123)
    first = load_reid_dataset("SmallVehicleID", split_seed=0)
    assert random.random() == untouched  # the global random state is restored
    second = load_reid_dataset("SmallVehicleID", split_seed=0)
    assert [q[0] for q in first.query] == [q[0] for q in second.query]
    assert len(first.gallery) == 20 and len(first.query) == 60  # one gallery image per vehicle id
    other = load_reid_dataset("SmallVehicleID", split_seed=1)
    assert [g[0] for g in other.gallery] != [g[0] for g in first.gallery]
    cfg = build_cfg(add_adasp_config, str(PROJECT / "configs" / "VehicleID" / "bagtricks_R50-ibn_adasp.yml"),
                    ["MODEL.DEVICE", "cpu"], framework="fastreid")
    assert cfg.TEST.SPLIT_SEED == 0
