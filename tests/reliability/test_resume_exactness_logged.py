"""Whether a ``--resume`` of a run can be bit-identical is written to ``log.txt`` when the run starts (before:
said only at resume time, once, on stderr)."""
from argparse import Namespace

import pytest
import torch
from detectron2.data.samplers import TrainingSampler
from torch.utils.data import DataLoader, TensorDataset

from shared.engine import GenericTrainer, setup
from shared.output_lock import release_output_dir


def _add_nothing(cfg):
    return cfg


class _Toy(GenericTrainer):
    workers = 0

    @classmethod
    def build_model(cls, cfg):
        return torch.nn.Linear(2, 1)

    @classmethod
    def build_train_loader(cls, cfg):
        data = TensorDataset(torch.randn(8, 2))
        return DataLoader(data, batch_size=2, sampler=TrainingSampler(8, seed=1), num_workers=cls.workers)


@pytest.mark.parametrize("workers, line", [
    (0, "resume exactness: a --resume of this run continues bit-identically (CPU, DATALOADER.NUM_WORKERS 0)"),
    (2, "resume exactness: a --resume of this run will NOT be bit-identical to an uninterrupted run: "
        "DATALOADER.NUM_WORKERS=2 > 0"),
])
def test_resume_exactness_is_in_log_txt_when_training_starts(tmp_path, workers, line):
    out = tmp_path / f"w{workers}"
    args = Namespace(config_file="", opts=["OUTPUT_DIR", str(out), "MODEL.DEVICE", "cpu"], eval_only=False,
                     resume=False, num_gpus=1, num_machines=1, machine_rank=0, dist_url="auto")
    cfg = setup(args, _add_nothing)
    try:
        _Toy.workers = workers
        _Toy(cfg)
    finally:
        release_output_dir(cfg.OUTPUT_DIR)
    assert line in (out / "log.txt").read_text()
