"""mmdetection's deterministic class-balanced repeat (ClassBalancedRepeatSampler) against hand-computed repeat
counts, its use by the RFS presets and by IIFTrainer, and detectron2's stochastic rounding as the switch."""
from collections import Counter
from pathlib import Path

import iif  # noqa: F401  (compat layer first)
import pytest
from detectron2.config import get_cfg

from iif.config import add_iif_config
from iif.sampler import ClassBalancedRepeatSampler, repeat_counts, repeat_factors

LVIS_DIR = Path(__file__).resolve().parents[2] / "projects" / "IIF" / "configs" / "LVIS-InstanceSegmentation"


def _records():
    """5 images: class 0 in the first four, class 1 in the last one (with class 0 in the fourth again)."""
    present = [[0], [0], [0], [0, 0], [1]]
    return [{"annotations": [{"category_id": c} for c in classes]} for classes in present]


def test_repeat_counts_by_hand():
    # t = 0.968: f(0) = 4/5 -> r = sqrt(0.968 / 0.8) = 1.1; f(1) = 1/5 -> r = sqrt(0.968 / 0.2) = 2.2
    factors = repeat_factors(_records(), 0.968)
    assert factors == pytest.approx([1.1, 1.1, 1.1, 1.1, 2.2])
    # mmdetection: ceil(r) = 2, 2, 2, 2, 3 every epoch (detectron2 draws 1 or 2, and 2 or 3)
    assert repeat_counts(_records(), 0.968) == [2, 2, 2, 2, 3]
    # below the threshold no image repeats; an image without annotations has r = 1
    assert repeat_counts(_records() + [{"annotations": []}], 0.001) == [1] * 6


def test_every_epoch_holds_exactly_the_counts():
    counts = [2, 2, 2, 2, 3]
    sampler = ClassBalancedRepeatSampler(counts, seed=0)
    assert len(sampler) == 11
    stream = iter(sampler)
    epochs = [[next(stream) for _ in range(11)] for _ in range(3)]
    for epoch in epochs:
        assert Counter(epoch) == {0: 2, 1: 2, 2: 2, 3: 2, 4: 3}
    assert epochs[0] != epochs[1]  # shuffled anew each epoch
    again = iter(ClassBalancedRepeatSampler(counts, seed=0))
    assert [next(again) for _ in range(33)] == sum(epochs, [])  # same seed, same stream


def test_counts_are_checked():
    with pytest.raises(ValueError, match="repeat count"):
        ClassBalancedRepeatSampler([1, 0, 2], seed=0)


def _resolved(name):
    cfg = get_cfg()
    add_iif_config(cfg)
    cfg.merge_from_file(str(LVIS_DIR / name))
    return cfg


def test_rfs_presets_use_the_deterministic_sampler_and_uniform_ones_do_not():
    rfs = [p.name for p in LVIS_DIR.glob("*rfs*.yaml")]
    assert len(rfs) == 8
    for name in rfs:
        assert _resolved(name).DATALOADER.SAMPLER_TRAIN == "ClassBalancedRepeatSampler", name
    assert _resolved("mask_rcnn_R_50_FPN_iif_raw_1x.yaml").DATALOADER.SAMPLER_TRAIN == "TrainingSampler"


def test_trainer_builds_the_sampler_from_the_training_set(monkeypatch):
    """IIFTrainer.build_train_loader: counts from the training records, detectron2's sampler on the switch."""
    import iif.trainer as trainer_module

    built = {}

    def fake_loader(cfg, dataset, sampler):
        built.update(dataset=dataset, sampler=sampler)
        return "loader"

    monkeypatch.setattr(trainer_module, "get_detection_dataset_dicts", lambda names, filter_empty: _records())
    monkeypatch.setattr(trainer_module, "build_detection_train_loader", fake_loader)
    cfg = _resolved("mask_rcnn_R_50_FPN_iif_raw_rfs_1x.yaml")
    cfg.DATALOADER.REPEAT_THRESHOLD = 0.968
    assert trainer_module.IIFTrainer.build_train_loader(cfg) == "loader"
    assert isinstance(built["sampler"], ClassBalancedRepeatSampler) and len(built["sampler"]) == 11

    cfg.DATALOADER.SAMPLER_TRAIN = "RepeatFactorTrainingSampler"  # the switch: detectron2's own loader
    monkeypatch.setattr(trainer_module.DefaultTrainer, "build_train_loader",
                        classmethod(lambda cls, c: "detectron2 loader"))
    assert trainer_module.IIFTrainer.build_train_loader(cfg) == "detectron2 loader"
