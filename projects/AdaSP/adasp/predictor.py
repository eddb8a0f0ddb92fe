"""A trained AdaSP run as a feature extractor: ``shared.engine.load_run(OUTPUT_DIR)`` returns a
:class:`ReIDExtractor` (registered here as the ``"adasp"`` run loader).

The extractor embeds image files exactly as the trainer's evaluation does: FastReID's test transform
(``INPUT.SIZE_TEST``), the model in eval mode (pixel normalisation inside the model), the flipped image
averaged in when ``TEST.FLIP.ENABLED`` -- so its features equal those of ``AdaSPTrainer.test`` on the same
images. Query expansion and re-ranking (``TEST.AQE``, ``TEST.RERANK``) act on a whole query/gallery set
and are not part of the features.
"""
from __future__ import annotations

from typing import Any, Dict

import torch
from fastreid.data.data_utils import read_image
from fastreid.data.transforms import build_transforms

from shared.engine.run import RunInfo, register_run_loader, run_config, write_run_info
from shared.retrieval.export import EmbeddingExtractor

__all__ = ["ReIDExtractor", "load_adasp_run", "reid_metric", "write_adasp_run_info"]

#: fastreid's TEST.METRIC -> the metric of shared.retrieval.export.rank_gallery
_METRICS = {"cosine": "cosine", "euclidean": "l2"}


def reid_metric(cfg) -> str:
    """``"cosine"`` or ``"l2"`` for ``TEST.METRIC`` (fastreid's ``"cosine"`` / ``"euclidean"``)."""
    metric = str(cfg.TEST.METRIC).lower()
    if metric not in _METRICS:
        raise ValueError(f"TEST.METRIC={cfg.TEST.METRIC!r}: expected one of {sorted(_METRICS)}")
    return _METRICS[metric]


class ReIDExtractor(EmbeddingExtractor):
    """``embed_files(paths) -> [N, D]`` with the run's model and test transform (module docstring)."""

    def __init__(self, cfg, model: torch.nn.Module):
        self.cfg = cfg
        self.model = model.eval()
        self.device = torch.device(cfg.MODEL.DEVICE)
        self.transform = build_transforms(cfg, is_train=False)
        self.flip = bool(cfg.TEST.FLIP.ENABLED)
        self.metric = reid_metric(cfg)
        self.input_size = tuple(int(s) for s in cfg.INPUT.SIZE_TEST)
        self.batch_size = int(cfg.TEST.IMS_PER_BATCH)

    def load(self, path: str) -> torch.Tensor:
        return self.transform(read_image(path))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """fastreid's ``inference_on_dataset`` step: model(inputs), then the flipped inputs averaged in (the
        same in-place dict the evaluator passes)."""
        inputs = {"images": images.to(self.device)}
        outputs = self.model(inputs)
        if self.flip:
            inputs["images"] = inputs["images"].flip(dims=[3])
            outputs = (outputs + self.model(inputs)) / 2
        return outputs


def _descriptor_dim(cfg, model: torch.nn.Module) -> int:
    """Width of the model's test feature, from one forward of a blank test-size image (eval mode, no grad,
    the training mode restored)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            size = [int(s) for s in cfg.INPUT.SIZE_TEST]
            image = torch.zeros(1, 3, *size, device=torch.device(cfg.MODEL.DEVICE))
            return int(model({"images": image}).shape[1])
    finally:
        model.train(was_training)


def write_adasp_run_info(cfg, model: torch.nn.Module) -> None:
    """``OUTPUT_DIR/run.json`` of an AdaSP run: what its features are (size, comparison, input)."""
    meta: Dict[str, Any] = {
        "descriptor_dim": _descriptor_dim(cfg, model),
        "metric": reid_metric(cfg),
        "normalized": False,  # fastreid's features are compared by TEST.METRIC, not L2-normalised
        "input_size": [int(s) for s in cfg.INPUT.SIZE_TEST],
        "pixel_mean": [float(v) for v in cfg.MODEL.PIXEL_MEAN],
        "pixel_std": [float(v) for v in cfg.MODEL.PIXEL_STD],
        "flip_test": bool(cfg.TEST.FLIP.ENABLED),
        "train_datasets": list(cfg.DATASETS.NAMES),
        "test_datasets": list(cfg.DATASETS.TESTS),
    }
    write_run_info(cfg, "adasp", __name__, framework="fastreid", **meta)


@register_run_loader("adasp")
def load_adasp_run(run: RunInfo, checkpoint: str, device: str, **options: Any) -> ReIDExtractor:
    """The run's model with its weights (every tensor required) as a :class:`ReIDExtractor`."""
    from adasp.config import add_adasp_config
    from adasp.trainer import AdaSPTrainer

    cfg = run_config(run, add_adasp_config, checkpoint, device, opts=options.pop("opts", ()))
    model = AdaSPTrainer.build_model(cfg)
    checkpointer = AdaSPTrainer.build_checkpointer(model, cfg)
    checkpointer.load(checkpoint, checkpointables=[])
    return ReIDExtractor(cfg, model)
