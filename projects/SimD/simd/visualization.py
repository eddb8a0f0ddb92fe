"""Pictures for debugging label assignment on tiny objects: GT boxes, the anchors each similarity makes
positive in the RPN, and (optionally) a model's detections, drawn with detectron2's ``Visualizer``.

Panels, side by side: one per similarity (GT in green, positive anchors in that panel's colour, with the
number of GTs that got no positive anchor in the title strip), then the detections if weights are given;
below them a legend strip names every box colour (:func:`legend_strip`).
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import cv2
import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.modeling import build_model
from detectron2.structures import Boxes
from detectron2.utils.visualizer import Visualizer

from shared.engine import AtomicDetectionCheckpointer
from simd.similarity import valid_gt_mask

PANEL_COLOURS = {
    "iou": (0.1, 0.4, 1.0),
    "simd": (1.0, 0.15, 0.15),
    "nwd": (0.8, 0.2, 0.9),
    "dotd": (1.0, 0.6, 0.0),
    "giou": (0.0, 0.7, 0.7),
    "diou": (0.5, 0.5, 0.0),
    "ciou": (0.3, 0.3, 0.3),
}
GT_COLOUR = (0.1, 0.9, 0.1)
DETECTION_COLOUR = (1.0, 0.85, 0.0)
LEGEND_HEIGHT = 28


def load_training_view(cfg: CfgNode, record: dict):
    """The image (RGB uint8) and GT boxes of a dataset record, resized like training (no flip)."""
    image = utils.read_image(record["file_name"], format="RGB")
    aug = T.ResizeShortestEdge(max(cfg.INPUT.MIN_SIZE_TRAIN), cfg.INPUT.MAX_SIZE_TRAIN)
    transformed = T.AugInput(image)
    transforms = aug(transformed)
    annos = [
        utils.transform_instance_annotations(a, transforms, transformed.image.shape[:2])
        for a in record.get("annotations", [])
        if not a.get("iscrowd", 0)
    ]
    instances = utils.annotations_to_instances(annos, transformed.image.shape[:2])
    return transformed.image, instances


@torch.no_grad()
def positive_anchors(cfg: CfgNode, similarity: str, image: np.ndarray, gt_boxes: Boxes):
    """(positive anchors [P, 4], number of valid GTs without any positive) under ``similarity``, with the
    configured RPN matcher before sampling."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.RPN.SIMILARITY = similarity
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg).eval()
    rpn = model.proposal_generator
    tensor = torch.as_tensor(np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1)), dtype=torch.float32)
    images = model.preprocess_image([{"image": tensor}])
    features = model.backbone(images.tensor)
    anchors = Boxes.cat(rpn.anchor_generator([features[f] for f in rpn.in_features]))
    gt = gt_boxes[valid_gt_mask(gt_boxes)]
    matched, labels = rpn.anchor_matcher(rpn.similarity(gt, anchors))
    positive = labels == 1
    covered = torch.zeros(len(gt), dtype=torch.bool)
    covered[matched[positive]] = True
    return anchors.tensor[positive], int((~covered).sum()) if len(gt) else 0


def _panel(image: np.ndarray, title: str, metadata, boxes_and_colours) -> np.ndarray:
    vis = Visualizer(image, metadata, scale=max(1.0, 512.0 / max(image.shape[:2])))
    for boxes, colour, width in boxes_and_colours:
        for box in boxes:
            vis.draw_box([float(v) for v in box], edge_color=colour, line_style="-", alpha=1.0)
    out = vis.get_output().get_image()
    strip = np.full((28, out.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, out], axis=0)


def legend_strip(width: int, entries: Sequence[tuple]) -> np.ndarray:
    """A white strip ``LEGEND_HEIGHT`` px high and ``width`` wide (RGB uint8): per ``(label, colour)`` entry
    (colour as RGB fractions, as the panels draw it) a box outline in that colour followed by the label."""
    strip = np.full((LEGEND_HEIGHT, width, 3), 255, np.uint8)
    x = 8
    for label, colour in entries:
        rgb = tuple(int(round(255 * c)) for c in colour)
        cv2.rectangle(strip, (x, 7), (x + 16, LEGEND_HEIGHT - 8), rgb, 2)
        cv2.putText(strip, label, (x + 22, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        x += 22 + cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)[0][0] + 18
    return strip


def draw_assignment(
    cfg: CfgNode,
    record: dict,
    dataset_name: str,
    similarities: Sequence[str] = ("iou", "simd"),
    weights: Optional[str] = None,
    score_thresh: float = 0.3,
) -> np.ndarray:
    """The side-by-side picture (RGB uint8) for one dataset record."""
    metadata = MetadataCatalog.get(dataset_name)
    image, instances = load_training_view(cfg, record)
    gt_boxes = instances.gt_boxes
    panels: List[np.ndarray] = []
    for kind in similarities:
        pos, missed = positive_anchors(cfg, kind, image, gt_boxes)
        title = f"{kind}: {len(pos)} positive anchors, {missed}/{len(gt_boxes)} GT without one"
        panels.append(
            _panel(
                image,
                title,
                metadata,
                [
                    (pos.tolist(), PANEL_COLOURS.get(kind, (1, 0, 0)), 1),
                    (gt_boxes.tensor.tolist(), GT_COLOUR, 1),
                ],
            )
        )
    if weights:
        model = build_model(cfg).eval()
        AtomicDetectionCheckpointer(model).load(weights)
        tensor = torch.as_tensor(
            np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1)), dtype=torch.float32
        )
        with torch.no_grad():
            det = model([{"image": tensor, "height": image.shape[0], "width": image.shape[1]}])[0][
                "instances"
            ]
        det = det[det.scores >= score_thresh]
        panels.append(
            _panel(
                image,
                f"detections (score >= {score_thresh}): {len(det)}",
                metadata,
                [
                    (gt_boxes.tensor.tolist(), GT_COLOUR, 1),
                    (det.pred_boxes.tensor.tolist(), DETECTION_COLOUR, 1),
                ],
            )
        )
    height = max(p.shape[0] for p in panels)
    panels = [np.pad(p, ((0, height - p.shape[0]), (0, 4), (0, 0)), constant_values=255) for p in panels]
    picture = np.concatenate(panels, axis=1)
    entries = [("ground truth", GT_COLOUR)]
    entries += [(f"positive anchor ({kind})", PANEL_COLOURS.get(kind, (1, 0, 0))) for kind in similarities]
    if weights:
        entries.append((f"detection (score >= {score_thresh})", DETECTION_COLOUR))
    return np.concatenate([picture, legend_strip(picture.shape[1], entries)], axis=0)


def save_png(image_rgb: np.ndarray, path: str) -> None:
    if not cv2.imwrite(path, image_rgb[:, :, ::-1]):
        raise OSError(f"could not write {path}")
