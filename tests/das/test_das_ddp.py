"""DDP on the CPU (2 gloo processes): SOLVER.IMS_PER_BATCH is the global batch, split across the processes,
and the loss, the gradients, the DAS state and the evaluation equal those of one process on the same global
batch."""
import itertools
import json
import os

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import das  # noqa: F401
from das.config import add_das_config
from das.evaluation import evaluate_retrieval, shard_bounds
from das.sampler import ClassBalancedBatchSampler
from das.trainer import DASTrainer

from shared.engine import build_cfg

SYNTHETIC_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "projects", "DAS", "configs",
                                "Synthetic", "triplet_distance.yaml")
OPTS = [
    "MODEL.EMBEDDING.BACKBONE", "test_resnet", "MODEL.EMBEDDING.DIM", "16", "MODEL.DAS.NUM_CLASSES", "4",
    "MODEL.EMBEDDING.FREEZE_BN", "True",  # per-sample network: a split batch embeds as the whole one
    "MODEL.LOSS.NAME", "multi_similarity", "MODEL.MINER.NAME", "multi_similarity",  # deterministic miner
    "INPUT.TEST_RESIZE", "32", "INPUT.TEST_SIZE", "32", "SOLVER.IMS_PER_BATCH", "8", "SEED", "0",
    "TEST.RETRIEVAL.RECALL_KS", "(1, 2)", "DATALOADER.NUM_WORKERS", "0",
]
GLOBAL_BATCH = 8


def _global_batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(GLOBAL_BATCH, 3, 32, 32, generator=g), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])


def _step(model, images, labels):
    """Two training steps (the second sees the DAS banks filled by the first); losses and gradients."""
    out = []
    for _ in range(2):
        model.zero_grad()
        losses = model({"images": images, "labels": labels})
        total = sum(losses.values())
        total.backward()
        grads = {n.removeprefix("module."): p.grad.clone() for n, p in model.named_parameters()
                 if p.grad is not None}
        out.append((float(total.detach()), grads))
    return out


def _build(cfg):
    torch.manual_seed(0)  # the same initial weights in every process
    model = DASTrainer.build_model(cfg)
    model.train()
    return model


def _worker(rank, world, port, root, out_dir):
    os.environ["DETECTRON2_DATASETS"] = root
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        cfg = build_cfg(add_das_config, SYNTHETIC_CONFIG, OPTS)
        model = torch.nn.parallel.DistributedDataParallel(_build(cfg))
        images, labels = _global_batch()
        share = GLOBAL_BATCH // world
        steps = _step(model, images[rank * share:(rank + 1) * share], labels[rank * share:(rank + 1) * share])
        producer = model.module.producer
        state = {k: v.clone() for k, v in producer.state_dict().items()}
        model.eval()
        metrics = evaluate_retrieval(cfg, model.module)
        torch.save(
            {"steps": steps, "state": state, "metrics": json.dumps(metrics)}, f"{out_dir}/rank{rank}.pt"
        )
    finally:
        dist.destroy_process_group()


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_equal_one_process(das_dataset_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(das_dataset_root))
    mp.spawn(_worker, args=(2, _free_port(), str(das_dataset_root), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]

    cfg = build_cfg(add_das_config, SYNTHETIC_CONFIG, OPTS)
    single_model = _build(cfg)
    single = _step(single_model, *_global_batch())
    single_model.eval()
    single_metrics = evaluate_retrieval(cfg, single_model)

    for rank in ranks:
        for (loss, grads), (loss_1, grads_1) in zip(rank["steps"], single):
            assert abs(loss - loss_1) <= 1e-5 * max(1.0, abs(loss_1))
            assert grads.keys() == grads_1.keys()
            for name in grads_1:  # DDP's average of the gathered-loss gradients = the single-process gradient
                torch.testing.assert_close(grads[name], grads_1[name], rtol=1e-4, atol=1e-6)
        for key, value in single_model.producer.state_dict().items():  # DAS state identical on every rank
            torch.testing.assert_close(rank["state"][key], value)
    assert ranks[0]["metrics"] == json.dumps(single_metrics)  # evaluation gathered on the main process
    assert json.loads(ranks[1]["metrics"]) == {}
    assert single[0][0] != single[1][0]  # the second step differs (the banks are in use), so both are checked


def test_sampler_shards_are_the_single_process_batch():
    labels = np.repeat(np.arange(12), 3)
    single = ClassBalancedBatchSampler(labels, classes_per_batch=6, samples_per_class=2, seed=4)
    shards = [ClassBalancedBatchSampler(labels, 6, 2, seed=4, num_shards=3, shard=s) for s in range(3)]
    batches = zip(iter(single), *(iter(s) for s in shards))
    for whole, *parts in itertools.islice(batches, 20):
        assert [i for part in parts for i in part] == whole
        assert all(len(p) == 4 for p in parts)


def test_shard_bounds_cover_every_item_once():
    for n in (0, 1, 7, 10):
        for world in (1, 2, 3):
            bounds = [shard_bounds(n, world, r) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
