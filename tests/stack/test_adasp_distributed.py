"""AdaSP's FastReID trainer step under 2 gloo processes on the CPU.

AdaSP is computed per device, nothing gathered (official code; FastReID's DDP), so 2 processes on a global
batch are one process whose loss is the mean of the two shard losses: that is what is compared. Each rank's
shard is recorded inside the trainer's own step; the 1-process reference uses the same trainer class, initial
weights and optimizer."""
import os
from argparse import Namespace
from pathlib import Path

import pytest
import torch

import adasp  # noqa: F401
from adasp.config import add_adasp_config
from adasp.datasets import SYNTHETIC_SUBDIR
from adasp.trainer import AdaSPTrainer
from shared.datasets.synthetic_reid import SyntheticReIDSpec, generate_synthetic_market1501
from shared.engine import build_cfg
from shared.engine.launch import launch

CONFIG = str(Path(__file__).resolve().parents[2] / "projects/AdaSP/configs/Synthetic/adasp_R18.yml")
OPTS = ["INPUT.SIZE_TRAIN", "[32, 16]", "INPUT.SIZE_TEST", "[32, 16]", "SOLVER.IMS_PER_BATCH", "16",
        "DATALOADER.NUM_INSTANCE", "4", "DATALOADER.NUM_WORKERS", "0", "INPUT.FLIP.ENABLED", "False",
        "INPUT.PADDING.ENABLED", "False", "MODEL.DEVICE", "cpu",
        # SGD, not the preset's Adam: Adam's first step is lr * g / (|g| + eps), so a weight whose gradient is
        # near eps moves by anything up to lr on a last-bit difference of g (measured: 1e-4 on one element of
        # layer1 between the 2-process and the 1-process step); SGD's step is linear in the averaged gradient
        "SOLVER.OPT", "SGD"]


def _cfg(out: str):
    cfg = build_cfg(add_adasp_config, CONFIG, OPTS + ["OUTPUT_DIR", out], framework="fastreid")
    cfg.freeze()
    return cfg


def _distributed_step(args: Namespace) -> None:
    from fastreid.utils import comm
    from fastreid.utils.events import EventStorage

    torch.manual_seed(0)
    trainer = AdaSPTrainer(_cfg(args.out))
    inner = trainer._trainer
    model = inner.model.module if comm.get_world_size() > 1 else inner.model
    initial = {k: v.clone() for k, v in model.state_dict().items()}  # rank 0's, broadcast by DDP
    batches = []
    source = inner._data_loader_iter

    def recording():  # keep a copy: fastreid normalises the images of the batch in place
        while True:
            batch = next(source)
            batches.append({k: v.clone() if torch.is_tensor(v) else v for k, v in batch.items()})
            yield batch

    inner._data_loader_iter = recording()
    with EventStorage(0) as inner.storage:
        inner.run_step()
        mean_loss = inner.storage.history("total_loss").latest() if comm.is_main_process() else None
    shards = comm.all_gather({k: v for k, v in batches[0].items() if k in ("images", "targets", "camids")})
    weights = comm.all_gather({k: v.detach().clone() for k, v in model.state_dict().items()})
    if comm.is_main_process():
        torch.save(dict(initial=initial, shards=shards, weights=weights, mean_loss=mean_loss,
                        world=comm.get_world_size()), os.path.join(args.out, "distributed.pt"))


@pytest.mark.slow  # ~22 s of CPU time (three ResNet-18 trainers built)
@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU path: a machine without CUDA")
def test_adasp_trainer_step_two_processes_equals_one(tmp_path, monkeypatch):
    root = tmp_path / "datasets"
    generate_synthetic_market1501(str(root / SYNTHETIC_SUBDIR), SyntheticReIDSpec(
        num_train_ids=8, num_test_ids=2, num_distractors=1, num_junk=1, seed=3))
    monkeypatch.setenv("FASTREID_DATASETS", str(root))  # inherited by the spawned processes
    launch(_distributed_step, 2, dist_url="auto", args=(Namespace(out=str(tmp_path)),))
    run = torch.load(tmp_path / "distributed.pt", weights_only=True)
    assert run["world"] == 2
    shard0, shard1 = run["shards"]
    assert shard0["images"].shape[0] == shard1["images"].shape[0] == 8  # 16 / 2 processes, P x K = 2 x 4
    for w in run["weights"][1:]:  # DDP kept the ranks identical
        for k in w:
            assert torch.equal(w[k], run["weights"][0][k]) or "running" in k or "num_batches" in k, k

    # one process: the same trainer, initial weights and optimizer; loss = mean of the shard losses
    (tmp_path / "single").mkdir()
    torch.manual_seed(0)
    trainer = AdaSPTrainer(_cfg(str(tmp_path / "single")))
    model, optimizer = trainer._trainer.model, trainer._trainer.optimizer
    model.load_state_dict(run["initial"])
    model.train()
    from fastreid.utils.events import EventStorage

    with EventStorage(0):
        shard_losses = [sum(model(dict(s)).values()) for s in (shard0, shard1)]
    loss = (shard_losses[0] + shard_losses[1]) / 2
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert run["mean_loss"] == pytest.approx(float(loss), rel=1e-5)
    after = model.state_dict()
    changed = 0
    for name, value in run["weights"][0].items():
        if "running" in name or "num_batches" in name:  # BN statistics: per rank (no buffer broadcast)
            continue
        torch.testing.assert_close(value, after[name], rtol=1e-4, atol=1e-6, msg=name)
        changed += not torch.equal(value, run["initial"][name])
    assert changed > 10  # the step really moved the weights
