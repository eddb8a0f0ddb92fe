"""A trained RDCD / SSCD run as a descriptor extractor: ``shared.engine.load_run(OUTPUT_DIR)`` returns a
:class:`DescriptorExtractor` (registered here as the ``"rdcd"`` run loader), and the files ``predict.py``
writes.

Descriptors are computed as :func:`rdcd.evaluation.extract_descriptors` computes them for an evaluation:
RGB, the test transform (``INPUT.COPY_DETECTION.TEST_SIZE`` / ``TEST_RESIZE``, ImageNet normalisation), the
model in eval mode (the student's compact descriptor for RDCD, the network's for SSCD), L2-normalised; two
descriptors are compared by their inner product.
"""
from __future__ import annotations

import os
from typing import Any, List, Sequence

import numpy as np
import torch

from rdcd.transforms import build_test_transform
from shared.engine.run import RunInfo, register_run_loader, run_config, write_run_info
from shared.retrieval.export import EmbeddingExtractor

__all__ = ["DescriptorExtractor", "descriptor_dim", "image_ids", "load_rdcd_run", "write_isc_descriptors",
           "write_rdcd_run_info"]


class DescriptorExtractor(EmbeddingExtractor):
    """``embed_files(paths) -> [N, D]`` L2-normalised copy-detection descriptors (module docstring)."""

    metric = "ip"

    def __init__(self, cfg, model: torch.nn.Module):
        self.cfg = cfg
        self.model = model.eval()
        self.transform = build_test_transform(cfg)
        size = int(cfg.INPUT.COPY_DETECTION.TEST_SIZE)
        self.input_size = (size, size)
        # short-side resizing keeps aspect ratios: images of one batch may differ in shape (as the evaluation)
        square = cfg.INPUT.COPY_DETECTION.TEST_RESIZE == "square"
        self.batch_size = int(cfg.TEST.COPY_DETECTION.BATCH_SIZE) if square else 1

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)


def descriptor_dim(cfg) -> int:
    """The descriptor size: ``MODEL.RDCD.DIM`` (RDCD student) or ``MODEL.SSCD.DIM`` (SSCD network)."""
    return int(cfg.MODEL.SSCD.DIM if cfg.MODEL.META_ARCHITECTURE == "SSCD" else cfg.MODEL.RDCD.DIM)


def write_rdcd_run_info(cfg) -> None:
    """``OUTPUT_DIR/run.json`` of an RDCD / SSCD run: descriptor size and comparison, test input."""
    c = cfg.INPUT.COPY_DETECTION
    write_run_info(
        cfg, "rdcd", __name__,
        meta_architecture=str(cfg.MODEL.META_ARCHITECTURE),
        descriptor_dim=descriptor_dim(cfg),
        metric="ip",
        normalized=True,
        input_size=[int(c.TEST_SIZE), int(c.TEST_SIZE)],
        test_resize=str(c.TEST_RESIZE),
        pixel_mean=[float(v) for v in c.MEAN],
        pixel_std=[float(v) for v in c.STD],
        train_datasets=list(cfg.DATASETS.TRAIN),
        test_datasets=list(cfg.DATASETS.TEST),
    )


@register_run_loader("rdcd")
def load_rdcd_run(run: RunInfo, checkpoint: str, device: str, **options: Any) -> DescriptorExtractor:
    """The run's model with its weights (every tensor but the training-only queues required) as a
    :class:`DescriptorExtractor`. The teacher is not loaded from ``MODEL.RDCD.TEACHER_WEIGHTS`` again: its
    weights are in the checkpoint."""
    from rdcd.config import add_rdcd_config
    from rdcd.trainer import RDCDTrainer

    opts = ["MODEL.RDCD.TEACHER_WEIGHTS", "", "MODEL.RDCD.STUDENT_WEIGHTS", ""]
    opts += list(options.pop("opts", ()))
    cfg = run_config(run, add_rdcd_config, checkpoint, device, opts=opts)
    model = RDCDTrainer.build_model(cfg)
    RDCDTrainer.build_checkpointer(model, cfg).load(checkpoint, checkpointables=[])
    return DescriptorExtractor(cfg, model)


def image_ids(names: Sequence[str]) -> List[str]:
    """Copy-detection ids of image names: the name without its extension (``sub/Q00001.jpg`` ->
    ``sub/Q00001``), as isc2021's ``read_descriptors`` strips them."""
    return [os.path.splitext(n)[0] for n in names]


def write_isc_descriptors(path: str, ids: Sequence[str], descriptors: np.ndarray) -> str:
    """One image set's descriptors in isc2021's h5 layout (``isc/io.py`` ``write_hdf5_descriptors``):
    datasets ``vectors`` (float32 [N, D]) and ``image_names`` (ASCII), in the given order; readable by
    isc2021's ``read_descriptors`` (``compute_metrics.py --track2 --query_descs / --db_descs``)."""
    import h5py

    names = []
    for i in ids:
        try:
            names.append(str(i).encode("ascii"))
        except UnicodeEncodeError:
            raise ValueError(f"image id {i!r} is not ASCII; isc2021's h5 layout stores ASCII names") from None
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("vectors", data=np.ascontiguousarray(descriptors, dtype=np.float32))
        f.create_dataset("image_names", data=np.array(names))
    return path
