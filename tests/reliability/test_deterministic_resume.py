"""Deterministic resume: on the CPU, a run killed right after a checkpoint and resumed with ``--resume`` ends
with weights bit-identical to the uninterrupted run -- for a GenericTrainer project (DAS), a detectron2
``DefaultTrainer`` project (SimD) and a FastReID project (AdaSP). Before shared.engine.resume the sampler
restarted its order at every launch and the RNG states were those of the new process, so the weights
differed."""
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from shared.engine.resume import ResumableSampler, capture_rng_state, preserve_rng, restore_rng_state

ROOT = Path(__file__).resolve().parents[2]


class _Killed(Exception):
    """Stands for kill -9 right after the checkpoint of the given iteration / epoch was written."""


def _kill_hook(base, *, iteration=None, epoch=None):
    class Kill(base):
        def after_step(self):
            if iteration is not None and self.trainer.iter == iteration:
                raise _Killed

        def after_epoch(self):
            if epoch is not None and self.trainer.epoch == epoch:
                raise _Killed

    return Kill()


def _fresh_process(seed: int) -> None:
    """What default_setup does in a new process (seed every generator with cfg.SEED)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _run_killed_and_resumed(make_trainer, kill_hook, seed, *, scramble=True):
    """(uninterrupted final state_dict, killed-and-resumed final state_dict)."""
    _fresh_process(seed)
    full = make_trainer("full")
    full.resume_or_load(resume=False)
    full.train()
    reference = {k: v.clone() for k, v in full.model.state_dict().items()}

    _fresh_process(seed)
    killed = make_trainer("killed")
    killed.resume_or_load(resume=False)
    killed.register_hooks([kill_hook])
    with pytest.raises(_Killed):
        killed.train()
    if scramble:  # the new process's generators know nothing of the killed one
        _fresh_process(seed + 1)
    else:
        _fresh_process(seed)
    resumed = make_trainer("killed")
    resumed.resume_or_load(resume=True)
    resumed.train()
    return reference, resumed.model.state_dict()


def _assert_bit_identical(reference, resumed):
    assert reference.keys() == resumed.keys()
    differing = [k for k in reference if not torch.equal(reference[k], resumed[k])]
    assert not differing, (f"{len(differing)} of {len(reference)} tensors differ after resume, "
                           f"e.g. {differing[:3]}")


# --------------------------------------------------------------------------------------- building blocks
def test_rng_state_roundtrip_and_preserve():
    state = capture_rng_state()
    a = (random.random(), float(np.random.rand()), torch.rand(1).item())
    restore_rng_state(state)
    assert (random.random(), float(np.random.rand()), torch.rand(1).item()) == a
    with preserve_rng():
        random.random(), np.random.rand(), torch.rand(3)
    b = (random.random(), float(np.random.rand()), torch.rand(1).item())
    restore_rng_state(state)
    random.random(), np.random.rand(), torch.rand(1)
    assert (random.random(), float(np.random.rand()), torch.rand(1).item()) == b


class _GlobalNumpySampler:
    """Like FastReID's identity samplers: seeds numpy's global generator once, then draws from it."""

    def __init__(self, seed):
        self._seed = seed

    def __iter__(self):
        np.random.seed(self._seed)
        while True:
            yield from np.random.permutation(10).tolist()


def test_resumable_sampler_skips_exactly_even_when_augmentations_share_the_global_rng():
    def draw(sampler, n, augment):
        it = iter(sampler)
        out = []
        for _ in range(n):
            out.append(next(it))
            if augment:
                np.random.rand(7)  # an augmentation drawing from the same global generator
        return out

    def wrap(seed):
        wrapped = ResumableSampler(_GlobalNumpySampler(seed))
        wrapped.chunk_size = 4  # several chunks, a skip that ends mid-chunk
        return wrapped

    reference = draw(wrap(3), 35, augment=True)
    assert sorted(reference[:10]) == list(range(10))
    first = wrap(3)
    assert draw(first, 13, augment=True) == reference[:13]
    saved = first.state_dict()
    assert saved == {"consumed": 13, "seed": 3}
    again = wrap(99)  # the seed comes back from the checkpoint
    again.load_state_dict(saved)
    np.random.seed(1234)
    assert draw(again, 22, augment=True) == reference[13:]


def test_loader_layouts_are_found_and_worker_processes_are_warned_about(caplog):
    import logging

    from detectron2.data import build_batch_data_loader
    from detectron2.data.samplers import TrainingSampler
    from torch.utils.data import DataLoader

    from shared.engine.resume import TrainingResumeState, make_loader_resumable

    data = list(range(10))
    for loader in (DataLoader(data, batch_size=2, sampler=TrainingSampler(10, seed=1)),  # RDCD, IIF cls
                   build_batch_data_loader(data, TrainingSampler(10, seed=1), 2, aspect_ratio_grouping=False),
                   build_batch_data_loader(data, TrainingSampler(10, seed=1), 2, aspect_ratio_grouping=True)):
        sampler, workers = make_loader_resumable(loader)
        assert isinstance(sampler, ResumableSampler) and sampler.state_dict()["seed"] == 1 and workers == 0
        assert make_loader_resumable(loader)[0] is sampler  # idempotent
    plain = DataLoader(data, batch_size=2, sampler=TrainingSampler(10, seed=1))
    first = [b.tolist() for _, b in zip(range(4), plain)]
    resumed = DataLoader(data, batch_size=2, sampler=TrainingSampler(10, seed=1))
    sampler, _ = make_loader_resumable(resumed)
    sampler.load_state_dict({"consumed": 4, "seed": 1})
    assert [b.tolist() for _, b in zip(range(2), resumed)] == first[2:]

    with_workers = DataLoader(data, batch_size=2, sampler=TrainingSampler(10, seed=1), num_workers=2)
    state = TrainingResumeState(*make_loader_resumable(with_workers))
    with caplog.at_level(logging.WARNING):
        state.load_state_dict({"rng": capture_rng_state(), "sampler": {"consumed": 4, "seed": 1},
                               "num_workers": 2})
    assert "NUM_WORKERS > 0" in caplog.text and state.sampler._skip == 0


# --------------------------------------------------------------------------------------- GenericTrainer (DAS)
@pytest.fixture
def das_root(tmp_path_factory):
    from shared.datasets.synthetic_fine_grained import generate_synthetic_fine_grained

    base = tmp_path_factory.mktemp("das_resume_root")
    generate_synthetic_fine_grained(str(base / "synthetic_birds"), num_classes=8, images_per_class=4,
                                    image_size=32, seed=0)
    return base


def test_generic_trainer_das_resume_is_bit_identical(das_root, tmp_path, monkeypatch):
    import das  # noqa: F401
    from das.config import add_das_config
    from das.trainer import DASTrainer
    from detectron2.engine import HookBase

    from shared.engine import build_cfg

    monkeypatch.setenv("DETECTRON2_DATASETS", str(das_root))
    config = str(ROOT / "projects" / "DAS" / "configs" / "Synthetic" / "triplet_distance.yaml")
    opts = ["MODEL.EMBEDDING.BACKBONE", "test_resnet", "MODEL.EMBEDDING.DIM", "16",
            "MODEL.DAS.NUM_CLASSES", "4",
            "INPUT.TRAIN_SIZE", "32", "INPUT.TEST_RESIZE", "32", "INPUT.TEST_SIZE", "32",
            "SOLVER.IMS_PER_BATCH", "6", "SOLVER.MAX_ITER", "7", "SOLVER.CHECKPOINT_PERIOD", "3",
            "TEST.EVAL_PERIOD", "0", "DATALOADER.NUM_WORKERS", "0", "SEED", "7",
            # the set generated above (8 classes x 4 images, 32 px)
            "DATASETS.SYNTHETIC_FINE_GRAINED.NUM_CLASSES", "8",
            "DATASETS.SYNTHETIC_FINE_GRAINED.IMAGES_PER_CLASS", "4",
            "DATASETS.SYNTHETIC_FINE_GRAINED.IMAGE_SIZE", "32"]

    def make(name):
        return DASTrainer(build_cfg(add_das_config, config, opts + ["OUTPUT_DIR", str(tmp_path / name)]))

    reference, resumed = _run_killed_and_resumed(make, _kill_hook(HookBase, iteration=2), seed=7)
    _assert_bit_identical(reference, resumed)
    assert (tmp_path / "killed" / "model_0000002.pth.sha256").is_file()


# --------------------------------------------------------------------------------------- detectron2 (SimD)
def test_detectron2_simd_resume_is_bit_identical(tmp_path):
    import simd  # noqa: F401
    from detectron2.engine import HookBase
    from simd.config import add_simd_config

    from shared.engine import build_cfg
    from simd.trainer import SimDTrainer
    from shared.datasets.synthetic_tiny import generate_synthetic_tiny, register_synthetic_tiny

    root = str(tmp_path / "tiny")
    generate_synthetic_tiny(root, seed=3, image_size=128, num_train=4, num_val=2, objects_per_image=(6, 10),
                            clutter_per_image=(3, 6))
    register_synthetic_tiny(root, prefix="reltest_tiny")
    config = str(ROOT / "projects" / "SimD" / "configs" / "synthetic" / "faster_rcnn_R18_FPN_iou.yaml")
    opts = ["DATASETS.TRAIN", "('reltest_tiny_train',)", "DATASETS.TEST", "()",
            "INPUT.MIN_SIZE_TRAIN", "(128,)", "INPUT.MAX_SIZE_TRAIN", "128",
            "INPUT.MIN_SIZE_TEST", "128", "INPUT.MAX_SIZE_TEST", "128",
            "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "5", "SOLVER.BASE_LR", "0.001",
            "SOLVER.CHECKPOINT_PERIOD", "2", "TEST.EVAL_PERIOD", "0", "DATALOADER.NUM_WORKERS", "0",
            "MODEL.FPN.OUT_CHANNELS", "32", "MODEL.ROI_BOX_HEAD.FC_DIM", "32",
            "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32", "MODEL.RPN.BATCH_SIZE_PER_IMAGE", "64",
            "MODEL.RPN.POST_NMS_TOPK_TRAIN", "100", "MODEL.RPN.POST_NMS_TOPK_TEST", "100",
            "SEED", "5"]

    def make(name):
        cfg = build_cfg(add_simd_config, config, opts + ["OUTPUT_DIR", str(tmp_path / name)])
        return SimDTrainer(cfg)

    reference, resumed = _run_killed_and_resumed(make, _kill_hook(HookBase, iteration=1), seed=5)
    _assert_bit_identical(reference, resumed)


# --------------------------------------------------------------------------------------- FastReID (AdaSP)
def test_fastreid_adasp_resume_is_bit_identical(tmp_path, monkeypatch):
    import adasp  # noqa: F401
    from adasp.config import add_adasp_config
    from adasp.datasets import SYNTHETIC_SUBDIR
    from adasp.trainer import AdaSPTrainer
    from fastreid.engine.hooks import HookBase

    from shared.datasets.synthetic_reid import SyntheticReIDSpec, generate_synthetic_market1501
    from shared.engine import build_cfg

    root = tmp_path / "reid"
    generate_synthetic_market1501(str(root / SYNTHETIC_SUBDIR), SyntheticReIDSpec(
        num_train_ids=6, num_test_ids=4, num_distractors=2, num_junk=1, seed=5))
    monkeypatch.setenv("FASTREID_DATASETS", str(root))
    config = str(ROOT / "projects" / "AdaSP" / "configs" / "Synthetic" / "adasp_R18.yml")
    opts = ["INPUT.SIZE_TRAIN", "[32, 16]", "INPUT.SIZE_TEST", "[32, 16]", "SOLVER.IMS_PER_BATCH", "8",
            "DATALOADER.NUM_WORKERS", "0", "SOLVER.MAX_EPOCH", "2", "TEST.EVAL_PERIOD", "100",
            "SOLVER.CHECKPOINT_PERIOD", "1", "SOLVER.WARMUP_ITERS", "2", "TEST.IMS_PER_BATCH", "64",
            "SOLVER.SCHED", "MultiStepLR", "SEED", "11"]

    def make(name):
        os.makedirs(tmp_path / name, exist_ok=True)  # default_setup's job; FastReID writes config.yaml there
        return AdaSPTrainer(build_cfg(add_adasp_config, config, opts + ["OUTPUT_DIR", str(tmp_path / name)],
                                      framework="fastreid"))

    reference, resumed = _run_killed_and_resumed(make, _kill_hook(HookBase, epoch=0), seed=11)
    _assert_bit_identical(reference, resumed)


def test_resume_removes_orphan_tmp_files(tmp_path):
    from shared.engine import AtomicDetectionCheckpointer

    model = torch.nn.Linear(2, 2)
    ckpt = AtomicDetectionCheckpointer(model, str(tmp_path))
    ckpt.save("model_0000001", iteration=1)
    orphan = tmp_path / ".model_0000002.pth.abc123.tmp"  # what kill -9 during a write leaves
    orphan.write_bytes(b"partial")
    ckpt.resume_or_load("", resume=True)
    assert not orphan.exists()
    assert os.path.isfile(tmp_path / "model_0000001.pth")
