"""DDP code paths on 2 CPU processes (gloo): cross-process gather, shuffle-BN order, shared queues and the
SSCD loss over all-gathered embeddings equal to the single-process loss on the global batch."""

import os
import socket

import rdcd  # noqa: F401
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rdcd.config import BASE_CONFIG, add_rdcd_config
from shared.engine import build_cfg
from rdcd.modeling import build_model
from rdcd.modeling.distributed import concat_all_gather, shuffled_batch_forward
from rdcd.modeling.queue import DescriptorQueue


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sscd_model():
    cfg = build_cfg(add_rdcd_config, BASE_CONFIG)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = "SSCD"
    cfg.MODEL.SSCD.NETWORK = "sscd_r18"
    cfg.MODEL.SSCD.DIM = 16
    torch.manual_seed(0)
    model = build_model(cfg).train()
    model.network.eval()  # per-sample outputs (no batch statistics), so both runs see identical embeddings
    return model


def _views(rank):
    g = torch.Generator().manual_seed(100 + rank)
    return torch.randn(3, 3, 32, 32, generator=g), torch.randn(3, 3, 32, 32, generator=g)


class _MeanColour(torch.nn.Module):
    def forward(self, images):
        return images.mean(dim=(2, 3))


def _extract(paths):
    from torchvision import transforms

    from rdcd.evaluation import extract_descriptors

    return extract_descriptors(_MeanColour(), paths, transforms.ToTensor(), batch_size=2)


def _worker(rank, port, results, paths):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    try:
        x = torch.full((2, 3), float(rank))
        gathered = concat_all_gather(x)
        shuffled = shuffled_batch_forward(lambda t: t * 2 + 1, torch.arange(4.0).view(4, 1) + 10 * rank)
        queue = DescriptorQueue(6, 1)
        queue.enqueue(torch.tensor([[1.0 + rank], [3.0 + rank]]))
        view1, view2 = _views(rank)
        losses = _sscd_model()({"view1": view1, "view2": view2})
        descriptors = _extract(paths)  # each rank embeds its shard; only rank 0 receives them all
        results[rank] = dict(
            descriptors=None if descriptors is None else descriptors.tolist(),
            gathered=gathered.tolist(),
            shuffled=shuffled.view(-1).tolist(),
            queue=queue.features.view(-1).tolist(),
            pointer=int(queue.pointer),
            loss=float(losses["loss_infonce"]),
            entropy=float(losses["loss_entropy"]),
        )
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_paths(tmp_path):
    from PIL import Image

    paths = []
    for i in range(5):
        paths.append(str(tmp_path / f"R{i:06d}.png"))
        Image.new("RGB", (8, 8), (10 * i, 20 * i, 30 * i)).save(paths[-1])
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(_free_port(), results, paths), nprocs=2, join=True)
    assert results[1]["descriptors"] is None
    torch.testing.assert_close(torch.tensor(results[0]["descriptors"]), torch.from_numpy(_extract(paths)))
    for rank in (0, 1):
        r = results[rank]
        assert r["gathered"] == [[0.0] * 3] * 2 + [[1.0] * 3] * 2
        assert r["shuffled"] == [2 * (v + 10 * rank) + 1 for v in range(4)]
        assert r["queue"][:4] == [1.0, 3.0, 2.0, 4.0] and r["pointer"] == 4  # both ranks' keys, rank order
    assert results[0]["loss"] == pytest.approx(results[1]["loss"], rel=1e-5)

    # the same global batch in one process gives the same SSCD losses
    v0, v1 = _views(0), _views(1)
    model = _sscd_model()
    single = model({"view1": torch.cat([v0[0], v1[0]]), "view2": torch.cat([v0[1], v1[1]])})
    assert results[0]["loss"] == pytest.approx(float(single["loss_infonce"]), rel=1e-4)
    assert results[0]["entropy"] == pytest.approx(float(single["loss_entropy"]), rel=1e-4)
