"""End to end on the tiny synthetic set: the SimD RPN assigns anchors and trains (the released code crashes
there), RetinaNet / Cascade R-CNN steps, SimD-NMS inference, AI-TOD evaluation, and bad input."""

import json
import os

import pytest
import torch
from detectron2.data import DatasetCatalog, DatasetMapper
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from shared.engine import AtomicDetectionCheckpointer
from simd.trainer import SimDTrainer, prepare_cfg


def _simd(cfg, **extra):
    cfg = cfg.clone()
    cfg.MODEL.RPN.SIMILARITY = "simd"
    cfg.MODEL.SIMD.M, cfg.MODEL.SIMD.N = 4.4, 4.4
    for key, value in extra.items():
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return cfg


def _batch(cfg, n=2):
    mapper = DatasetMapper(cfg, is_train=True)
    return [mapper(d) for d in DatasetCatalog.get(cfg.DATASETS.TRAIN[0])[:n]]


def test_simd_rpn_assigns_anchors_and_trainer_runs_one_step(small_cfg):
    cfg = small_cfg.clone()
    cfg.MODEL.RPN.SIMILARITY = "simd"
    cfg.MODEL.SIMD.ESTIMATE_NORMALISERS = True
    cfg = prepare_cfg(cfg)
    assert cfg.MODEL.SIMD.M > 0 and cfg.MODEL.SIMD.N > 0
    trainer = SimDTrainer(cfg)
    assert isinstance(trainer.checkpointer, AtomicDetectionCheckpointer)
    assert type(trainer.model.proposal_generator).__name__ == "SimilarityRPN"
    trainer.resume_or_load(resume=False)
    trainer.train()
    with open(os.path.join(cfg.OUTPUT_DIR, "metrics.json")) as f:
        metrics = [json.loads(line) for line in f]
    last = [m for m in metrics if "loss_rpn_cls" in m][-1]
    assert last["rpn/num_pos_anchors"] > 0
    assert all(torch.isfinite(torch.tensor(last[k])) for k in ("loss_rpn_cls", "loss_rpn_loc", "loss_cls"))
    assert os.path.exists(os.path.join(cfg.OUTPUT_DIR, "model_final.pth"))
    # the final evaluation ran with the AI-TOD protocol
    results = trainer._last_eval_results
    assert {"AP", "AP25", "AP50", "APvt", "APt", "APs", "APm"} <= set(results["bbox"])
    _check_trained_model_is_usable(cfg)


def _check_trained_model_is_usable(cfg):
    """m, n in the checkpoint and config.yaml; predictions on disk; DefaultPredictor from config.yaml +
    model_final.pth detects; --eval-only in a fresh directory needs no training json."""
    import argparse

    import cv2
    from detectron2.engine import DefaultPredictor

    from shared.engine import build_cfg, train_or_evaluate
    from simd.config import add_simd_config

    final = os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
    stored = torch.load(final, map_location="cpu", weights_only=True)["simd_normalisers"]
    assert stored == {"m": cfg.MODEL.SIMD.M, "n": cfg.MODEL.SIMD.N}
    inference = os.path.join(cfg.OUTPUT_DIR, "inference", cfg.DATASETS.TEST[0])
    assert os.path.exists(os.path.join(inference, "instances_predictions.pth"))
    with open(os.path.join(inference, "coco_instances_results.json")) as f:
        assert isinstance(json.load(f), list)
    dumped = build_cfg(add_simd_config, os.path.join(cfg.OUTPUT_DIR, "config.yaml"), ["MODEL.WEIGHTS", final])
    assert dumped.MODEL.SIMD.M == cfg.MODEL.SIMD.M and dumped.MODEL.SIMD.N == cfg.MODEL.SIMD.N
    record = DatasetCatalog.get(cfg.DATASETS.TEST[0])[0]
    outputs = DefaultPredictor(dumped)(cv2.imread(record["file_name"]))
    assert len(outputs["instances"]) >= 0 and outputs["instances"].image_size == (
        record["height"],
        record["width"],
    )
    # --eval-only in a fresh directory, original config (m, n unset, estimation on), no training set at all
    fresh = cfg.clone()
    fresh.defrost()
    fresh.MODEL.SIMD.M = fresh.MODEL.SIMD.N = -1.0
    fresh.DATASETS.TRAIN = ("simdtest_no_such_dataset",)
    fresh.OUTPUT_DIR = cfg.OUTPUT_DIR + "_fresh"
    fresh.MODEL.WEIGHTS = final
    fresh = prepare_cfg(fresh)
    assert (fresh.MODEL.SIMD.M, fresh.MODEL.SIMD.N) == (cfg.MODEL.SIMD.M, cfg.MODEL.SIMD.N)
    args = argparse.Namespace(eval_only=True, resume=False)
    results = train_or_evaluate(SimDTrainer, fresh, args)
    assert "AP" in results["bbox"]
    assert os.path.exists(
        os.path.join(fresh.OUTPUT_DIR, "inference", cfg.DATASETS.TEST[0], "coco_instances_results.json")
    )


def test_simd_and_iou_assignment_differ_on_the_same_anchors(small_cfg):
    torch.manual_seed(0)
    iou_model = build_model(small_cfg)
    simd_model = build_model(_simd(small_cfg))
    batch = _batch(small_cfg)
    images = iou_model.preprocess_image(batch)
    features = iou_model.backbone(images.tensor)
    anchors = iou_model.proposal_generator.anchor_generator(
        [features[f] for f in ("p2", "p3", "p4", "p5", "p6")]
    )
    gts = [x["instances"] for x in batch]
    torch.manual_seed(1)
    iou_labels, _ = iou_model.proposal_generator.label_and_sample_anchors(anchors, gts)
    torch.manual_seed(1)
    simd_labels, simd_boxes = simd_model.proposal_generator.label_and_sample_anchors(anchors, gts)
    assert all((lab == 1).any() for lab in simd_labels)
    assert any(not torch.equal(a, b) for a, b in zip(iou_labels, simd_labels))
    # every positive anchor's matched box is one of the image's GT boxes
    for lab, boxes, gt in zip(simd_labels, simd_boxes, gts):
        pos = boxes[lab == 1]
        assert bool((pos[:, None, :] == gt.gt_boxes.tensor[None]).all(-1).any(-1).all())


@pytest.mark.parametrize("arch", ["retinanet", "cascade"])
def test_retinanet_and_cascade_train_one_step_with_simd(small_cfg, arch):
    cfg = _simd(small_cfg)
    if arch == "retinanet":
        cfg.MODEL.META_ARCHITECTURE = "SimilarityRetinaNet"
        cfg.MODEL.RETINANET.SIMILARITY = "simd"
        cfg.MODEL.RETINANET.NUM_CLASSES = 8
        cfg.MODEL.RETINANET.LOW_QUALITY_MODE = "mmdet"
        cfg.MODEL.RETINANET.IN_FEATURES = ["p3", "p4", "p5", "p6"]
        cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[16], [32], [64], [128]]
    else:
        cfg.MODEL.ROI_HEADS.NAME = "SimilarityCascadeROIHeads"
        cfg.MODEL.ROI_HEADS.SIMILARITY = "simd"
        cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = True
    model = build_model(cfg)
    model.train()
    with EventStorage(0) as storage:
        losses = model(_batch(cfg))
        total = sum(losses.values())
        total.backward()
    assert torch.isfinite(total)
    if arch == "cascade":
        assert {"loss_cls_stage0", "loss_cls_stage2"} <= set(losses)
        assert storage.latest()["stage2/roi_head/num_fg_samples"][0] >= 0
    else:
        assert type(model.anchor_matcher).__name__ == "MaxSimMatcher"


def test_simd_nms_inference_in_rpn_and_heads(small_cfg):
    cfg = _simd(
        small_cfg,
        **{
            "MODEL.RPN.NMS_SIMILARITY": "simd",
            "MODEL.RPN.SIM_NMS_THRESH": 0.6,
            "MODEL.ROI_HEADS.NMS_SIMILARITY": "simd",
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST": 0.0,
        },
    )
    model = build_model(cfg).eval()
    batch = [{"image": x["image"], "height": 128, "width": 128} for x in _batch(cfg)]
    with torch.no_grad():
        images = model.preprocess_image(batch)
        features = model.backbone(images.tensor)
        proposals, _ = model.proposal_generator(images, features)
        outputs = model(batch)
    for p in proposals:
        assert 0 < len(p) <= cfg.MODEL.RPN.POST_NMS_TOPK_TEST
        sim = model.proposal_generator.proposal_nms  # nothing above the threshold survives within a level
        assert len(
            sim(p.proposal_boxes.tensor, p.objectness_logits, torch.zeros(len(p), dtype=torch.long))
        ) <= len(p)
    for out in outputs:
        inst = out["instances"]
        assert len(inst) <= cfg.TEST.DETECTIONS_PER_IMAGE
        for c in inst.pred_classes.unique():
            boxes = inst.pred_boxes.tensor[inst.pred_classes == c]
            from shared.boxes import pairwise_similarity

            s = pairwise_similarity("simd", boxes, boxes, m=4.4, n=4.4)
            s.fill_diagonal_(0)
            assert float(s.max()) <= 0.5 + 1e-6 if len(boxes) > 1 else True


# ---------------------------------------------------------------------------------------------------------
# bad input


def test_empty_and_degenerate_gt_give_finite_losses(small_cfg):
    cfg = _simd(small_cfg)
    model = build_model(cfg)
    model.train()
    batch = _batch(cfg)
    batch[0]["instances"] = Instances(
        batch[0]["instances"].image_size,
        gt_boxes=Boxes(torch.zeros(0, 4)),
        gt_classes=torch.zeros(0, dtype=torch.int64),
    )
    degenerate = batch[1]["instances"]
    degenerate.gt_boxes.tensor[0] = torch.tensor([5.0, 5.0, 5.0, 9.0])  # zero width
    with EventStorage(0):
        losses = model(batch)
    assert all(torch.isfinite(v) for v in losses.values())
    # the degenerate GT does not make anchors positive (detectron2's matcher would label all of them)
    cfg2 = cfg.clone()
    cfg2.MODEL.RPN.SIMILARITY, cfg2.MODEL.RPN.LOW_QUALITY_MODE = "iou", "detectron2"
    rpn = build_model(cfg2).proposal_generator
    anchors = [
        Boxes(torch.tensor([[0.0, 0.0, 8.0, 8.0], [50.0, 50.0, 58.0, 58.0], [90.0, 90.0, 98.0, 98.0]]))
    ]
    only_degenerate = Instances(
        (128, 128),
        gt_boxes=Boxes(torch.tensor([[20.0, 20.0, 20.0, 30.0]])),
        gt_classes=torch.zeros(1, dtype=torch.int64),
    )
    labels, _ = rpn.label_and_sample_anchors(anchors, [only_degenerate])
    assert (labels[0] == 1).sum() == 0


def test_boxes_outside_the_image_are_clipped_or_dropped(small_cfg):
    record = dict(DatasetCatalog.get(small_cfg.DATASETS.TRAIN[0])[0])
    record["annotations"] = [
        {"bbox": [120.0, 120.0, 20.0, 20.0], "bbox_mode": 1, "category_id": 0},  # partly outside: clipped
        {"bbox": [300.0, 300.0, 10.0, 10.0], "bbox_mode": 1, "category_id": 1},  # fully outside: dropped
    ]
    cfg = small_cfg.clone()
    cfg.INPUT.RANDOM_FLIP = "none"
    out = DatasetMapper(cfg, is_train=True)(record)
    boxes = out["instances"].gt_boxes.tensor
    assert boxes.tolist() == [[120.0, 120.0, 128.0, 128.0]]


def test_nan_predictions_raise_a_clear_error_in_training_and_are_dropped_at_inference(small_cfg):
    model = build_model(_simd(small_cfg, **{"MODEL.RPN.NMS_SIMILARITY": "simd"}))
    with torch.no_grad():
        model.proposal_generator.rpn_head.anchor_deltas.bias.fill_(float("nan"))
    batch = _batch(small_cfg)
    model.train()
    with EventStorage(0), pytest.raises(FloatingPointError, match="Inf/NaN"):
        model(batch)
    model.eval()
    with torch.no_grad():
        outputs = model([{"image": x["image"], "height": 128, "width": 128} for x in batch])
    assert all(len(o["instances"]) == 0 for o in outputs)


def test_nan_ground_truth_raises(small_cfg):
    rpn = build_model(_simd(small_cfg)).proposal_generator
    gt = Instances(
        (128, 128),
        gt_boxes=Boxes(torch.tensor([[1.0, 1.0, float("nan"), 5.0]])),
        gt_classes=torch.zeros(1, dtype=torch.int64),
    )
    with pytest.raises(FloatingPointError, match="ground-truth boxes contain NaN"):
        rpn.label_and_sample_anchors([Boxes(torch.tensor([[0.0, 0.0, 8.0, 8.0]]))], [gt])


@pytest.mark.parametrize(
    "key",
    [
        "MODEL.RPN.SIMILARITY",
        "MODEL.ROI_HEADS.SIMILARITY",
        "MODEL.RPN.NMS_SIMILARITY",
        "MODEL.ROI_HEADS.NMS_SIMILARITY",
    ],
)
def test_unknown_similarity_fails_at_build_naming_the_key(small_cfg, key):
    cfg = small_cfg.clone()
    cfg.merge_from_list([key, "kld"])
    with pytest.raises(ValueError, match=f"{key}='kld'"):
        build_model(cfg)


def test_simd_without_m_n_and_without_estimation_fails_at_build(small_cfg):
    cfg = small_cfg.clone()
    cfg.MODEL.RPN.SIMILARITY = "simd"
    with pytest.raises(ValueError, match="ESTIMATE_NORMALISERS"):
        build_model(prepare_cfg(cfg))
