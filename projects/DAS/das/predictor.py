"""A trained DAS run as a feature extractor: ``shared.engine.load_run(OUTPUT_DIR)`` returns an
:class:`EmbeddingModelExtractor` (registered here as the ``"das"`` run loader).

Images are embedded as :func:`das.evaluation.embed_dataset` embeds a test set: RGB, the test transform
(resize the short side to ``INPUT.TEST_RESIZE``, centre-crop ``INPUT.TEST_SIZE``), the model in eval mode
(pixel normalisation inside the model, L2-normalised output when ``MODEL.EMBEDDING.NORMALIZE``), compared by
L2 distance like the evaluation's k-NN.
"""
from __future__ import annotations

from typing import Any

import torch
from detectron2.modeling import build_model

from das.datasets import build_transform
from shared.engine.run import RunInfo, register_run_loader, run_config, write_run_info
from shared.retrieval.export import EmbeddingExtractor

__all__ = ["EmbeddingModelExtractor", "load_das_run", "write_das_run_info"]


class EmbeddingModelExtractor(EmbeddingExtractor):
    """``embed_files(paths) -> [N, D]`` with the run's model and test transform (module docstring)."""

    metric = "l2"

    def __init__(self, cfg, model: torch.nn.Module, batch_size: int = 64):
        self.cfg = cfg
        self.model = model.eval()
        self.transform = build_transform(cfg, is_train=False)
        self.input_size = (int(cfg.INPUT.TEST_SIZE), int(cfg.INPUT.TEST_SIZE))
        self.batch_size = batch_size  # das.datasets.build_test_loader's

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model({"images": images})


def write_das_run_info(cfg, num_classes: int) -> None:
    """``OUTPUT_DIR/run.json`` of a DAS run: embedding size, comparison, input, and the number of training
    classes the DAS state was built for (``MODEL.DAS.NUM_CLASSES``; 0 without DAS)."""
    write_run_info(
        cfg, "das", __name__,
        descriptor_dim=int(cfg.MODEL.EMBEDDING.DIM),
        metric="l2",
        normalized=bool(cfg.MODEL.EMBEDDING.NORMALIZE),
        input_size=[int(cfg.INPUT.TEST_SIZE), int(cfg.INPUT.TEST_SIZE)],
        test_resize=int(cfg.INPUT.TEST_RESIZE),
        pixel_mean=[float(v) for v in cfg.MODEL.PIXEL_MEAN],
        pixel_std=[float(v) for v in cfg.MODEL.PIXEL_STD],
        input_format=str(cfg.INPUT.FORMAT),
        num_classes=int(num_classes),
        train_datasets=list(cfg.DATASETS.TRAIN),
        test_datasets=list(cfg.DATASETS.TEST),
    )


@register_run_loader("das")
def load_das_run(run: RunInfo, checkpoint: str, device: str, **options: Any) -> EmbeddingModelExtractor:
    """The run's model with its weights (every tensor required) as an :class:`EmbeddingModelExtractor`;
    the DAS state's size comes from ``run.json`` (no dataset is read)."""
    from das.config import add_das_config
    from das.trainer import DASTrainer

    opts = list(options.pop("opts", ()))
    if run.metadata.get("num_classes"):
        opts += ["MODEL.DAS.NUM_CLASSES", str(int(run.metadata["num_classes"]))]
    cfg = run_config(run, add_das_config, checkpoint, device, opts=opts)
    model = build_model(cfg)
    DASTrainer.build_checkpointer(model, cfg).load(checkpoint, checkpointables=[])
    return EmbeddingModelExtractor(cfg, model)
