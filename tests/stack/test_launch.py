"""shared.engine.launch: ``--num-gpus 2`` without CUDA runs 2 gloo processes on the CPU, with detectron2's and
fastreid's process-group bookkeeping, and a DDP step of detectron2's ``create_ddp_model`` equals one process
on the same global batch."""
import json
import os
from argparse import Namespace

import pytest
import torch

from shared.engine import launch_from_args
from shared.engine.launch import choose_backend, launch


def _model() -> torch.nn.Module:
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))


def _global_batch():
    g = torch.Generator().manual_seed(7)
    return torch.randn(6, 4, generator=g), torch.randn(6, 1, generator=g)


def _sgd_step(model, x, y) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss = torch.nn.functional.mse_loss(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


def _worker_main(args: Namespace) -> None:
    import torch.distributed as dist
    from detectron2.engine.defaults import create_ddp_model
    from detectron2.utils import comm
    from fastreid.utils import comm as reid_comm

    rank = comm.get_rank()
    x, y = _global_batch()
    shard = slice(3 * rank, 3 * rank + 3)  # each rank gets its half of the global batch
    ddp = create_ddp_model(_model(), broadcast_buffers=False)
    loss = _sgd_step(ddp, x[shard], y[shard])
    record = dict(rank=rank, world=comm.get_world_size(), local_rank=comm.get_local_rank(),
                  local_size=comm.get_local_size(), reid_local_rank=reid_comm.get_local_rank(),
                  backend=dist.get_backend(), ddp=type(ddp).__name__, losses=comm.all_gather(loss),
                  weights=[p.detach().view(-1).tolist() for p in ddp.module.parameters()])
    with open(os.path.join(args.out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(record, f)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU path: a machine without CUDA")
def test_two_gloo_processes_on_cpu_equal_one_process(tmp_path):
    # what `train_net.py --num-gpus 2` does
    launch_from_args(_worker_main, Namespace(num_gpus=2, num_machines=1, machine_rank=0, dist_url="auto",
                                             out_dir=str(tmp_path)))
    r0, r1 = (json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1))
    for rank, r in enumerate((r0, r1)):
        ids = (r["rank"], r["world"], r["local_rank"], r["local_size"], r["reid_local_rank"])
        assert ids == (rank, 2, rank, 2, rank)
        assert r["backend"] == "gloo" and r["ddp"] == "DistributedDataParallel"
    assert r0["weights"] == r1["weights"]  # DDP averaged the gradients
    model = _model()
    x, y = _global_batch()
    loss = _sgd_step(model, x, y)
    assert sum(r0["losses"]) / 2 == pytest.approx(loss, rel=1e-6)  # equal halves: mean of means
    for got, want in zip(r0["weights"], model.parameters()):
        assert got == pytest.approx(want.detach().view(-1).tolist(), rel=1e-5, abs=1e-7)


def test_one_process_calls_main_directly():
    seen = []
    launch(seen.append, 1, args=("x",))
    assert seen == ["x"]


def test_cuda_with_too_few_devices_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="--num-gpus 2 .* 1 CUDA device"):
        choose_backend(2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_backend(8) == "gloo"
