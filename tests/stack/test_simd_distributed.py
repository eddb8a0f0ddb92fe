"""SimD under 2 gloo processes on the CPU (``--num-gpus 2`` without CUDA).

* m, n are estimated once, on rank 0, and every rank trains with the same values (read from the cache);
* one ``SimDTrainer`` step: detectron2 normalises the RPN and ROI losses per process and DDP averages the
  gradients, so 2 processes equal one process whose loss is the mean of the two shard losses. Each rank's
  shard is recorded inside the trainer's own step and the anchor / proposal sampling RNG is seeded per shard,
  so the 1-process reference (same trainer class, initial weights, optimizer) sees exactly the same work."""
import copy
import os
from argparse import Namespace
from pathlib import Path

import pytest
import torch

import simd  # noqa: F401
from shared.datasets.synthetic_tiny import generate_synthetic_tiny, register_synthetic_tiny
from shared.engine import build_cfg
from shared.engine.launch import launch
from simd.config import add_simd_config
from simd.trainer import SimDTrainer, prepare_cfg

CONFIG = str(Path(__file__).resolve().parents[2] / "projects/SimD/configs/synthetic"
             / "faster_rcnn_R18_FPN_iou.yaml")
PREFIX = "stack_simd_dist"


def _cfg(out: str):
    return build_cfg(add_simd_config, CONFIG, [
        "DATASETS.TRAIN", f"('{PREFIX}_train',)", "DATASETS.TEST", "()",
        "INPUT.MIN_SIZE_TRAIN", "(128,)", "INPUT.MAX_SIZE_TRAIN", "128", "INPUT.RANDOM_FLIP", "none",
        "SOLVER.IMS_PER_BATCH", "4", "SOLVER.MAX_ITER", "1", "SOLVER.STEPS", "()", "SOLVER.BASE_LR", "0.01",
        "SOLVER.REFERENCE_WORLD_SIZE", "0",  # the test compares fixed global batches: no auto-scaling
        "DATALOADER.NUM_WORKERS", "0", "MODEL.FPN.OUT_CHANNELS", "32", "MODEL.ROI_BOX_HEAD.FC_DIM", "32",
        "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32", "MODEL.RPN.BATCH_SIZE_PER_IMAGE", "64",
        "MODEL.RPN.POST_NMS_TOPK_TRAIN", "100", "MODEL.RPN.SIMILARITY", "simd",
        "MODEL.ROI_HEADS.SIMILARITY", "simd",
        "MODEL.SIMD.ESTIMATE_NORMALISERS", "True", "MODEL.DEVICE", "cpu", "OUTPUT_DIR", out])


def _bn_statistic(name: str) -> bool:
    return name.endswith(("running_mean", "running_var", "num_batches_tracked"))


def _distributed_step(args: Namespace) -> None:
    import simd.normalisers as normalisers
    from detectron2.utils import comm
    from detectron2.utils.events import EventStorage

    register_synthetic_tiny(args.root, prefix=PREFIX)
    estimate, calls = normalisers.estimate_normalisers, []
    normalisers.estimate_normalisers = lambda cfg: (calls.append(comm.get_rank()), estimate(cfg))[1]
    cfg = prepare_cfg(_cfg(args.out))
    torch.manual_seed(0)
    inner = SimDTrainer(cfg)._trainer
    model = inner.model.module if comm.get_world_size() > 1 else inner.model
    initial = {k: v.clone() for k, v in model.state_dict().items()}  # rank 0's, broadcast by DDP
    shard, source = [], inner._data_loader_iter

    def recording():
        while True:
            batch = next(source)
            shard.append(copy.deepcopy(batch))
            torch.manual_seed(100 + comm.get_rank())  # anchor / proposal sampling of this shard
            yield batch

    inner._data_loader_iter = recording()
    with EventStorage(0) as inner.storage:
        inner.run_step()
        mean_loss = inner.storage.history("total_loss").latest() if comm.is_main_process() else None
    gathered = comm.all_gather(dict(mn=(cfg.MODEL.SIMD.M, cfg.MODEL.SIMD.N), calls=calls, shard=shard[0],
                                    weights={k: v.detach().clone() for k, v in model.state_dict().items()}))
    if comm.is_main_process():
        torch.save(dict(initial=initial, ranks=gathered, mean_loss=mean_loss),
                   os.path.join(args.out, "run.pt"))


@pytest.mark.slow  # ~25 s of CPU time: three Faster R-CNN trainers and the m/n estimate
@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU path: a machine without CUDA")
def test_simd_two_processes_share_m_n_and_equal_one_process(tmp_path):
    from detectron2.utils.events import EventStorage

    root = str(tmp_path / "data")
    generate_synthetic_tiny(root, seed=3, image_size=128, num_train=4, num_val=1, objects_per_image=(6, 10),
                            clutter_per_image=(3, 6))
    out = str(tmp_path / "out")
    launch(_distributed_step, 2, dist_url="auto", args=(Namespace(root=root, out=out),))
    run = torch.load(os.path.join(out, "run.pt"), weights_only=False)  # our own file, with Instances
    r0, r1 = run["ranks"]
    assert r0["calls"] == [0] and r1["calls"] == []  # estimated once, on rank 0; rank 1 read the cache
    assert r0["mn"] == r1["mn"] and min(r0["mn"]) > 0
    assert len(r0["shard"]) == len(r1["shard"]) == 2  # 4 images / 2 processes
    assert {d["image_id"] for d in r0["shard"]}.isdisjoint({d["image_id"] for d in r1["shard"]})
    for k, v in r0["weights"].items():  # DDP kept the ranks identical (BN statistics stay per rank)
        assert torch.equal(v, r1["weights"][k]) or _bn_statistic(k), k

    register_synthetic_tiny(root, prefix=PREFIX)
    cfg = prepare_cfg(_cfg(out))  # 1 process: m, n from the same cache
    assert (cfg.MODEL.SIMD.M, cfg.MODEL.SIMD.N) == r0["mn"]
    torch.manual_seed(0)
    inner = SimDTrainer(cfg)._trainer
    inner.model.load_state_dict(run["initial"])
    inner.model.train()
    with EventStorage(0):
        losses = []
        for rank, r in enumerate((r0, r1)):
            torch.manual_seed(100 + rank)
            losses.append(sum(inner.model(r["shard"]).values()))
        loss = (losses[0] + losses[1]) / 2
    inner.optimizer.zero_grad()
    loss.backward()
    inner.optimizer.step()
    assert run["mean_loss"] == pytest.approx(float(loss), rel=1e-5)
    after = inner.model.state_dict()
    moved = 0
    for name, value in r0["weights"].items():
        if _bn_statistic(name):
            continue
        torch.testing.assert_close(value, after[name], rtol=1e-4, atol=1e-6, msg=name)
        moved += not torch.equal(value, run["initial"][name])
    assert moved > 10
