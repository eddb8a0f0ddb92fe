"""MODEL.LOSSES.GLOBAL_BATCH: CE + AdaSP over the batch gathered from 2 gloo processes (16 rows each) equal
the 1-process losses on the 32 rows, and the gradients each process gets on its own rows, averaged by DDP,
are the 1-process gradients. Without the option the 2 processes compute different (per-shard) losses."""
import os
from argparse import Namespace

import pytest
import torch

import adasp  # noqa: F401  (registers the architectures)
from adasp.config import add_adasp_config
from fastreid.modeling.meta_arch import build_model
from fastreid.utils.events import EventStorage
from shared.engine import build_cfg
from shared.engine.launch import launch

ROWS, CLASSES, DIM = 32, 8, 16  # 8 identities x 4 images, in identity blocks


def _opts(global_batch: bool):
    return ["MODEL.DEVICE", "cpu", "MODEL.BACKBONE.DEPTH", "18x", "MODEL.BACKBONE.FEAT_DIM", "512",
            "MODEL.HEADS.NUM_CLASSES", str(CLASSES), "MODEL.META_ARCHITECTURE", "AdaSPBaseline",
            "MODEL.LOSSES.NAME", '("CrossEntropyLoss", "AdaSPLoss")', "MODEL.LOSSES.ADASP.SCALE", "0.5",
            "MODEL.LOSSES.ADASP.TEMP", "0.05", "MODEL.LOSSES.GLOBAL_BATCH", str(global_batch)]


def _batch():
    gen = torch.Generator().manual_seed(7)
    labels = torch.arange(CLASSES).repeat_interleave(ROWS // CLASSES)
    features = torch.randn(ROWS, DIM, generator=gen) + 1.5 * torch.randn(CLASSES, DIM, generator=gen)[labels]
    return torch.randn(ROWS, CLASSES, generator=gen), features, labels


def _losses(model, logits, features, labels):
    logits, features = logits.clone().requires_grad_(), features.clone().requires_grad_()
    outputs = {"cls_outputs": logits, "pred_class_logits": logits.detach(), "features": features}
    with EventStorage(0):
        loss_dict = model.losses(outputs, labels)
    sum(loss_dict.values()).backward()
    return {k: v.item() for k, v in loss_dict.items()}, logits.grad, features.grad


def _worker(args: Namespace) -> None:
    import torch.distributed as dist

    rank, world = dist.get_rank(), dist.get_world_size()
    logits, features, labels = _batch()
    own = slice(rank * ROWS // world, (rank + 1) * ROWS // world)
    model = build_model(build_cfg(add_adasp_config, opts=_opts(True), framework="fastreid"))
    assert model.global_batch  # read from MODEL.LOSSES.GLOBAL_BATCH
    result = {True: _losses(model, logits[own], features[own], labels[own])}
    model.global_batch = False  # the default: per process
    result[False] = _losses(model, logits[own], features[own], labels[own])
    torch.save(result, os.path.join(args.out, f"rank{rank}.pt"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU path: a machine without CUDA")
def test_global_batch_losses_and_gradients_equal_one_process(tmp_path):
    launch(_worker, 2, dist_url="auto", args=(Namespace(out=str(tmp_path)),))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]

    model = build_model(build_cfg(add_adasp_config, opts=_opts(False), framework="fastreid"))
    single, logit_grad, feature_grad = _losses(model, *_batch())
    assert set(single) == {"loss_cls", "loss_adasp"}
    for rank, run in enumerate(ranks):
        losses, g_logits, g_features = run[True]
        for name, value in single.items():
            assert value == pytest.approx(losses[name], rel=1e-6), (rank, name)
        own = slice(rank * 16, (rank + 1) * 16)
        # each process holds 2 x the single-process gradient of its rows; DDP divides by the 2 processes
        torch.testing.assert_close(g_logits / 2, logit_grad[own], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(g_features / 2, feature_grad[own], rtol=1e-5, atol=1e-7)
    # per process (the default, FastReID's DDP): each shard's own loss, not the global one
    shard0, shard1 = ranks[0][False][0], ranks[1][False][0]
    assert (shard0["loss_adasp"] + shard1["loss_adasp"]) / 2 != pytest.approx(single["loss_adasp"], rel=1e-3)
