"""The assignment picture: one panel per similarity (+ detections), written as PNG."""
import cv2
import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model

from shared.engine import AtomicDetectionCheckpointer
from simd.visualization import (DETECTION_COLOUR, GT_COLOUR, LEGEND_HEIGHT, PANEL_COLOURS, draw_assignment,
                                load_training_view, positive_anchors, save_png)


def test_assignment_picture_has_one_panel_per_similarity_and_detections(small_cfg, tmp_path):
    cfg = small_cfg.clone()
    cfg.MODEL.SIMD.M, cfg.MODEL.SIMD.N = 4.4, 4.4
    record = DatasetCatalog.get("simdtest_tiny_train")[0]
    weights = str(tmp_path / "w.pth")
    AtomicDetectionCheckpointer(build_model(cfg), str(tmp_path)).save("w")
    picture = draw_assignment(cfg, record, "simdtest_tiny_train", ("iou", "simd"), weights=weights)
    assert picture.dtype == np.uint8 and picture.ndim == 3
    assert picture.shape[1] >= 3 * 512  # three panels, each upscaled to >= 512 px
    # the legend strip below the panels holds a box in every colour the panels use
    legend = picture[-LEGEND_HEIGHT:].reshape(-1, 3).astype(int)
    for colour in (GT_COLOUR, PANEL_COLOURS["iou"], PANEL_COLOURS["simd"], DETECTION_COLOUR):
        rgb = np.round(255 * np.asarray(colour)).astype(int)
        assert (np.abs(legend - rgb).max(axis=1) <= 2).sum() >= 20, colour
    assert (picture[-LEGEND_HEIGHT:] < 60).all(axis=2).sum() > 100  # the labels' black text
    assert (legend == 255).all(axis=1).mean() > 0.8  # on a white strip
    path = str(tmp_path / "a.png")
    save_png(picture, path)
    assert cv2.imread(path).shape == picture.shape


def test_positive_anchors_are_the_matchers_positives(small_cfg):
    cfg = small_cfg.clone()
    cfg.MODEL.SIMD.M, cfg.MODEL.SIMD.N = 4.4, 4.4
    image, instances = load_training_view(cfg, DatasetCatalog.get("simdtest_tiny_train")[1])
    pos_iou, missed_iou = positive_anchors(cfg, "iou", image, instances.gt_boxes)
    pos_simd, missed_simd = positive_anchors(cfg, "simd", image, instances.gt_boxes)
    assert len(pos_iou) > 0 and 0 <= missed_iou <= len(instances)
    assert 0 <= missed_simd <= len(instances)
    # every positive anchor overlaps or is near some GT box
    centres = (pos_iou[:, :2] + pos_iou[:, 2:]) / 2
    gt = instances.gt_boxes.tensor
    inside = ((centres[:, None, 0] > gt[None, :, 0] - 8) & (centres[:, None, 0] < gt[None, :, 2] + 8)
              & (centres[:, None, 1] > gt[None, :, 1] - 8) & (centres[:, None, 1] < gt[None, :, 3] + 8))
    assert bool(inside.any(dim=1).all())
    assert torch.is_tensor(pos_simd)
