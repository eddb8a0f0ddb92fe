"""Where every value of every IIF preset comes from: the official IIF repository (kostas1515/iif, mmdet 2.15)
file and line, or its training log, or "ours" with the reason (no official counterpart).

``tests/iif/test_iif_presets.py`` holds each preset's resolved config against these rows, and checks that
no key a preset changes from the detectron2 + IIF defaults is missing here; ``markdown_table()`` prints the
table shown in projects/IIF/README.md. Paths are relative to the official repository's
``instance_segmentation/`` (detection) or ``classification/`` folder.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

from shared.engine.provenance import OURS, Row, source_cell
from shared.engine.provenance import markdown_table as _table

M = "configs/_base_/models/mask_rcnn_r50_fpn.py"
L1 = "configs/lvis/mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1.py"
DS = "configs/_base_/datasets/lvis_v1_instance.py"
S1 = "configs/_base_/schedules/schedule_1x.py"
S2 = "configs/_base_/schedules/schedule_2x.py"
LOG = "experiments/iif/iif_r50_4x4_1x/20220825_181618.log"
LOG_RFS = "experiments/fasa_iof_base10_r50_rfs_cos_norm_4x4_2x/20220825_184525.log"
FASA = "configs/fasa/fasa_iof_base10_r50_rfs_cos_norm_4x4_2x.py"
NORMED = "mmdet/models/utils/normed_predictor.py"
IIF_LOSS = "mmdet/models/losses/iif_loss.py"
CBD = "mmdet/datasets/dataset_wrappers.py"
L2 = "configs/lvis/mask_rcnn_r50_fpn_sample1e-3_mstrain_2x_lvis_v1.py"

FPN_LEVELS = ["p2", "p3", "p4", "p5"]

#: rows shared by every LVIS preset
COMMON: List[Row] = [
    ("MODEL.META_ARCHITECTURE", "GeneralizedRCNN", f"{M}:3 (MaskRCNN)"),
    ("MODEL.MASK_ON", True, f"{M}:3 (MaskRCNN)"),
    ("MODEL.BACKBONE.NAME", "build_resnet_fpn_backbone", f"{M}:4-18 (ResNet + FPN)"),
    ("MODEL.BACKBONE.FREEZE_AT", 2, f"{M}:9 (frozen_stages=1: stem and first stage)"),
    ("MODEL.RESNETS.DEPTH", 50, f"{M}:6"),
    ("MODEL.RESNETS.OUT_FEATURES", ["res2", "res3", "res4", "res5"], f"{M}:8 (out_indices 0-3)"),
    ("MODEL.RESNETS.NORM", "FrozenBN", OURS + f"official BN with norm_eval=True ({M}:10-11) freezes the "
     "statistics but trains the affine parameters; detectron2's FrozenBN freezes both"),
    ("MODEL.FPN.IN_FEATURES", ["res2", "res3", "res4", "res5"], f"{M}:16"),
    ("MODEL.FPN.OUT_CHANNELS", 256, f"{M}:17"),
    ("MODEL.ANCHOR_GENERATOR.SIZES", [[32], [64], [128], [256], [512]],
     f"{M}:25,27 (scale 8 x strides 4-64)"),
    ("MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS", [[0.5, 1.0, 2.0]], f"{M}:26"),
    ("MODEL.RPN.IN_FEATURES", FPN_LEVELS + ["p6"], f"{M}:27 (strides 4-64)"),
    ("MODEL.RPN.BATCH_SIZE_PER_IMAGE", 256, f"{M}:81"),
    ("MODEL.RPN.POSITIVE_FRACTION", 0.5, f"{M}:82"),
    ("MODEL.RPN.PRE_NMS_TOPK_TRAIN", 2000, f"{M}:89"),
    ("MODEL.RPN.POST_NMS_TOPK_TRAIN", 1000, f"{M}:90"),
    ("MODEL.RPN.NMS_THRESH", 0.7, f"{M}:91"),
    ("MODEL.RPN.PRE_NMS_TOPK_TEST", 1000, f"{M}:112"),
    ("MODEL.RPN.POST_NMS_TOPK_TEST", 1000, f"{M}:113"),
    ("MODEL.ROI_HEADS.NAME", "IIFROIHeads", OURS + f"StandardRoIHead ({M}:36) hosting the IIF box predictor; "
     "with IIF off it is the plain softmax head"),
    ("MODEL.ROI_HEADS.IN_FEATURES", FPN_LEVELS, f"{M}:41 (strides 4-32)"),
    ("MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", 512, f"{M}:103"),
    ("MODEL.ROI_HEADS.POSITIVE_FRACTION", 0.25, f"{M}:104"),
    ("MODEL.ROI_HEADS.IOU_THRESHOLDS", [0.5], f"{M}:96-98"),
    ("MODEL.ROI_HEADS.PROPOSAL_APPEND_GT", True, f"{M}:106 (add_gt_as_proposals). The official "
     f"match_low_quality=True ({M}:99, min_pos_iou 0.5) has no detectron2 key: with the GT boxes among the "
     "proposals every GT's best proposal is itself (IoU 1, already positive), so it changes an assignment "
     "only between identical GT boxes"),
    ("MODEL.ROI_HEADS.NUM_CLASSES", 1203, f"{L1}:8"),
    ("MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0001, f"{L1}:11"),
    ("TEST.DETECTIONS_PER_IMAGE", 300, f"{L1}:13"),
    ("MODEL.ROI_BOX_HEAD.NAME", "FastRCNNConvFCHead", f"{M}:43 (Shared2FCBBoxHead)"),
    ("MODEL.ROI_BOX_HEAD.NUM_FC", 2, f"{M}:43 (Shared2FCBBoxHead)"),
    ("MODEL.ROI_BOX_HEAD.FC_DIM", 1024, f"{M}:45"),
    ("MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION", 7, f"{M}:39"),
    ("MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO", 0, f"{M}:39"),
    ("MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS", (10.0, 10.0, 5.0, 5.0),
     f"{M}:51 (target_stds 0.1, 0.1, 0.2, 0.2)"),
    ("MODEL.ROI_MASK_HEAD.NUM_CONV", 4, f"{M}:63"),
    ("MODEL.ROI_MASK_HEAD.CONV_DIM", 256, f"{M}:65"),
    ("MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION", 14, f"{M}:58"),
    ("MODEL.ROI_BOX_HEAD.IIF.COUNT_SOURCE", "json", OURS + f"the official loss reads lvis_files/idf_1204.csv "
     f"({IIF_LOSS}:22,47); the same weights are computed from the training json's counts"),
    ("MODEL.ROI_BOX_HEAD.IIF.BG_WEIGHT", 1.0, f"{IIF_LOSS}:49"),
    ("MODEL.ROI_BOX_HEAD.IIF.NORM_P", 0.0, f"{IIF_LOSS}:47-50 (no normalisation)"),
    ("MODEL.DEVICE", "auto", OURS + "CUDA when available, else CPU"),
    ("MODEL.WEIGHTS", "", OURS + "the ImageNet R-50 is a local file passed on the command line "
     "(no downloads)"),
    ("DATASETS.TRAIN", ("lvis_v1_train",), f"{DS}:14"),
    ("DATASETS.TEST", ("lvis_v1_val",), f"{DS}:18"),
    ("INPUT.MIN_SIZE_TRAIN", (640, 672, 704, 736, 768, 800), f"{L1}:21-22"),
    ("INPUT.MIN_SIZE_TRAIN_SAMPLING", "choice", f"{L1}:23 (multiscale_mode='value')"),
    ("INPUT.MAX_SIZE_TRAIN", 1333, f"{L1}:21"),
    ("INPUT.MIN_SIZE_TEST", 800, "configs/_base_/datasets/coco_instance.py:20"),
    ("INPUT.MAX_SIZE_TEST", 1333, "configs/_base_/datasets/coco_instance.py:20"),
    ("INPUT.RANDOM_FLIP", "horizontal", f"{L1}:25 (flip_ratio 0.5)"),
    ("SOLVER.IMS_PER_BATCH", 16, f"{DS}:6 (4 images per GPU) x 4 GPUs ({LOG}:299)"),
    ("SOLVER.BASE_LR", 0.02, f"{S1}:2"),
    ("SOLVER.MOMENTUM", 0.9, f"{S1}:2"),
    ("SOLVER.WEIGHT_DECAY", 0.0001, f"{S1}:2"),
    ("SOLVER.LR_SCHEDULER_NAME", "WarmupMultiStepLR", f"{S1}:6 (policy 'step')"),
    ("SOLVER.GAMMA", 0.1, f"{S1}:6 (mmcv's step policy, gamma 0.1)"),
    ("SOLVER.WARMUP_METHOD", "linear", f"{S1}:7"),
    ("SOLVER.WARMUP_ITERS", 500, f"{S1}:8"),
    ("SOLVER.WARMUP_FACTOR", 0.001, f"{S1}:9"),
    ("DATALOADER.NUM_WORKERS", 4, f"{DS}:7"),
    ("DATALOADER.REPEAT_THRESHOLD", 0.001, f"{DS}:11"),
    ("TEST.EVAL_PERIOD", 0, f"{L1}:33 (evaluate after the last epoch)"),
]

TORCHVISION: List[Row] = [
    ("MODEL.PIXEL_MEAN", [123.675, 116.28, 103.53], f"{L1}:14-15"),
    ("MODEL.PIXEL_STD", [58.395, 57.12, 57.375], f"{L1}:15"),
    ("INPUT.FORMAT", "RGB", f"{L1}:15 (to_rgb=True)"),
    ("MODEL.RESNETS.STRIDE_IN_1X1", False, f"{M}:12 (style='pytorch'), torchvision weights ({M}:13)"),
]

MSRA: List[Row] = [
    ("MODEL.PIXEL_MEAN", [103.53, 116.28, 123.675],
     OURS + "detectron2's MSRA R-50.pkl convention (BGR means)"),
    ("MODEL.PIXEL_STD", [1.0, 1.0, 1.0], OURS + "detectron2's MSRA R-50.pkl convention (no std division)"),
    ("INPUT.FORMAT", "BGR", OURS + "detectron2's MSRA R-50.pkl convention"),
    ("MODEL.RESNETS.STRIDE_IN_1X1", True, OURS + "MSRA ResNets stride in the 1x1 conv"),
]


def _schedule(epochs: int, rfs: bool, official: str, sampler_line: str,
              lines: Tuple[str, str] = ("", "")) -> List[Row]:
    """Epoch-based official schedule -> iterations: iterations per epoch from the official log.
    ``lines``: (max_epochs, step) locations when the official config sets them itself."""
    per_epoch, log = (7674, f"{LOG_RFS}:387") if rfs else (6213, f"{LOG}:350")
    steps = (8, 11) if epochs == 12 else (16, 22)
    sched = S1 if epochs == 12 else S2
    epochs_at, steps_at = lines[0] or f"{sched}:11", lines[1] or f"{sched}:10"
    rows: List[Row] = [
        ("SOLVER.MAX_ITER", epochs * per_epoch,
         f"{epochs_at} ({epochs} epochs) x {per_epoch} it/epoch ({log})"),
        ("SOLVER.STEPS", tuple(s * per_epoch for s in steps), f"{steps_at} (epochs {steps[0]}, {steps[1]}) x "
         f"{per_epoch} it/epoch ({log})"),
        ("SOLVER.CHECKPOINT_PERIOD", per_epoch, "configs/_base_/default_runtime.py:1 (every epoch)"),
    ]
    if rfs:
        rows.append(("DATALOADER.SAMPLER_TRAIN", "ClassBalancedRepeatSampler",
                     f"{DS}:10-11 (ClassBalancedDataset, oversample_thr 1e-3; {official} {sampler_line}): "
                     f"each image ceil(r) times per epoch ({CBD}:220)"))
    else:
        rows.append(("DATALOADER.SAMPLER_TRAIN", "TrainingSampler",
                     f"{official}:{sampler_line} (oversample_thr=0.0: every repeat factor 1)"))
    return rows


def _softmax(official: str, lines: str) -> List[Row]:
    return [
        ("MODEL.ROI_BOX_HEAD.IIF.ENABLED", False, f"{official}:{lines.split('-')[0]} (CrossEntropyLoss)"),
        ("MODEL.ROI_BOX_HEAD.CLS_PREDICTOR", "linear", "mmdet/models/roi_heads/bbox_heads/bbox_head.py:34"),
        ("MODEL.ROI_BOX_HEAD.CLS_INIT", "softmax_baseline", f"{official}:{lines.split('-')[-1]} "
         "(constant 0.001, bias -6.5)"),
        ("MODEL.ROI_MASK_HEAD.NAME", "MaskRCNNConvUpsampleHead", f"{M}:62 (FCNMaskHead)"),
        ("MODEL.ROI_HEADS.NMS_THRESH_TEST", 0.5, f"{M}:118"),
    ]


def _iif_linear(official: str, loss_line: int, variant: str) -> List[Row]:
    return [
        ("MODEL.ROI_BOX_HEAD.IIF.ENABLED", True, f"{official}:{loss_line} (IIFLoss)"),
        ("MODEL.ROI_BOX_HEAD.IIF.VARIANT", variant, f"{official}:{loss_line}"),
        ("MODEL.ROI_BOX_HEAD.CLS_PREDICTOR", "linear", "mmdet/models/roi_heads/bbox_heads/bbox_head.py:34"),
        ("MODEL.ROI_BOX_HEAD.CLS_INIT", "iif", f"{official}:{loss_line + 1} (constant 0.001, bias 0)"),
        ("MODEL.ROI_MASK_HEAD.NAME", "MaskRCNNConvUpsampleHead", f"{M}:62 (FCNMaskHead)"),
        ("MODEL.ROI_HEADS.NMS_THRESH_TEST", 0.5, f"{M}:118"),
    ]


def _cosine(official: str, box_line: int, box_t: float, mask_line: int) -> List[Row]:
    return [
        ("MODEL.ROI_BOX_HEAD.CLS_PREDICTOR", "cosine", f"{official}:{box_line} (NormedLinear)"),
        ("MODEL.ROI_BOX_HEAD.COSINE_SCALE", box_t, f"{official}:{box_line}"),
        ("MODEL.ROI_BOX_HEAD.CLS_INIT", "default", f"{NORMED}:30-32 (normal std 0.01, bias 0)"),
        ("MODEL.ROI_MASK_HEAD.NAME", "NormedMaskRCNNConvUpsampleHead",
         f"{official}:{mask_line} (NormedConv2d)"),
        ("MODEL.ROI_MASK_HEAD.COSINE_SCALE", 20.0, f"{official}:{mask_line}"),
    ]


A = "configs/activations"
SOFTMAX_COS_1X = f"{A}/r50_rfs_cos_norm_4x4_1x_softmax.py"
SOFTMAX_COS_2X = f"{A}/r50_rfs_cos_norm_4x4_2x_softmax.py"
RAW_COS = f"{A}/iif/iif_r50_rfs_cos_norm_4x4_1x.py"

#: preset file name (under configs/LVIS-InstanceSegmentation/) -> (official config, its rows)
LVIS_PRESETS: Dict[str, Tuple[str, List[Row]]] = {
    "mask_rcnn_R_50_FPN_softmax_1x.yaml": (f"{A}/r50_4x4_1x_softmax.py", _softmax(
        f"{A}/r50_4x4_1x_softmax.py", "8-9") + _schedule(12, False, f"{A}/r50_4x4_1x_softmax.py", "6")),
    "mask_rcnn_R_50_FPN_softmax_2x.yaml": (f"{A}/r50_4x4_2x_softmax.py", _softmax(
        f"{A}/r50_4x4_2x_softmax.py", "8-9") + _schedule(24, False, f"{A}/r50_4x4_2x_softmax.py", "6")),
    "mask_rcnn_R_50_FPN_softmax_rfs_1x.yaml": (f"{A}/r50_rfs_4x4_1x_softmax.py", _softmax(
        f"{A}/r50_rfs_4x4_1x_softmax.py", "8-9") + _schedule(12, True, f"{A}/r50_rfs_4x4_1x_softmax.py",
                                                             "(no oversample_thr override)")),
    "mask_rcnn_R_50_FPN_softmax_rfs_2x.yaml": (f"{A}/r50_rfs_4x4_2x_softmax.py", _softmax(
        f"{A}/r50_rfs_4x4_2x_softmax.py", "7-8") + _schedule(24, True, f"{A}/r50_rfs_4x4_2x_softmax.py",
                                                             "(no oversample_thr override)")),
    "mask_rcnn_R_50_FPN_softmax_rfs_cos_norm_1x.yaml": (SOFTMAX_COS_1X, [
        ("MODEL.ROI_BOX_HEAD.IIF.ENABLED", False, f"{SOFTMAX_COS_1X}:9 (CrossEntropyLoss)"),
        ("MODEL.ROI_HEADS.NMS_THRESH_TEST", 0.5, f"{M}:118"),
    ] + _cosine(SOFTMAX_COS_1X, 10, 20.0, 12) + _schedule(12, True, SOFTMAX_COS_1X, "(no override)")),
    "mask_rcnn_R_50_FPN_softmax_rfs_cos_norm_2x.yaml": (SOFTMAX_COS_2X, [
        ("MODEL.ROI_BOX_HEAD.IIF.ENABLED", False, f"{SOFTMAX_COS_2X}:9 (CrossEntropyLoss)"),
        ("MODEL.ROI_HEADS.NMS_THRESH_TEST", 0.5, f"{M}:118"),
    ] + _cosine(SOFTMAX_COS_2X, 10, 20.0, 12) + _schedule(24, True, SOFTMAX_COS_2X, "(no override)")),
    "mask_rcnn_R_50_FPN_iif_raw_1x.yaml": (f"{A}/iif/iif_r50_4x4_1x.py", _iif_linear(
        f"{A}/iif/iif_r50_4x4_1x.py", 7, "raw") + _schedule(12, False, f"{A}/iif/iif_r50_4x4_1x.py", "5")),
    "mask_rcnn_R_50_FPN_iif_raw_2x.yaml": (f"{A}/iif/iif_r50_4x4_2x.py", _iif_linear(
        f"{A}/iif/iif_r50_4x4_2x.py", 7, "raw") + _schedule(24, False, f"{A}/iif/iif_r50_4x4_2x.py", "5")),
    "mask_rcnn_R_50_FPN_iif_raw_rfs_1x.yaml": (f"{A}/iif/iif_r50_rfs_4x4_1x.py", _iif_linear(
        f"{A}/iif/iif_r50_rfs_4x4_1x.py", 5, "raw") + _schedule(12, True, f"{A}/iif/iif_r50_rfs_4x4_1x.py",
                                                                "(no override)")),
    "mask_rcnn_R_50_FPN_iif_raw_rfs_2x.yaml": (f"{A}/iif/iif_r50_rfs_4x4_2x.py", _iif_linear(
        f"{A}/iif/iif_r50_rfs_4x4_2x.py", 7, "raw") + _schedule(24, True, f"{A}/iif/iif_r50_rfs_4x4_2x.py",
                                                                "(line 5 commented out)")),
    "mask_rcnn_R_50_FPN_iif_raw_rfs_cos_norm_1x.yaml": (RAW_COS, [
        ("MODEL.ROI_BOX_HEAD.IIF.ENABLED", True, f"{RAW_COS}:7 (IIFLoss)"),
        ("MODEL.ROI_BOX_HEAD.IIF.VARIANT", "raw", f"{RAW_COS}:7"),
        ("MODEL.ROI_HEADS.NMS_THRESH_TEST", 0.5, f"{M}:118"),
    ] + _cosine(RAW_COS, 8, 8.0, 10) + _schedule(12, True, RAW_COS, "line 5 (oversample_thr=0.001)")),
    "mask_rcnn_R_50_FPN_iif_base10_obj_1x.yaml": (
        f"{A}/iif/variants/iif_base10_obj_r50_4x4_1x.py", _iif_linear(
        f"{A}/iif/variants/iif_base10_obj_r50_4x4_1x.py", 7, "base10_obj")
        + _schedule(12, False, f"{A}/iif/variants/iif_base10_obj_r50_4x4_1x.py", "5")),
    "mask_rcnn_R_50_FPN_iif_base10_obj_rfs_cos_norm_2x.yaml": (FASA + " (FASA not implemented)", [
        ("MODEL.ROI_BOX_HEAD.IIF.ENABLED", True, f"{FASA}:53 (FasaIIFLoss)"),
        ("MODEL.ROI_BOX_HEAD.IIF.VARIANT", "base10_obj", f"{FASA}:56; {LOG_RFS}:87"),
        ("MODEL.ROI_HEADS.NMS_THRESH_TEST", 0.3, f"{FASA}:128; {LOG_RFS}:159"),
    ] + _cosine(FASA, 57, 8.0, 77) + _schedule(24, True, FASA, "line 178", (f"{FASA}:280", f"{FASA}:279"))),
}


def _common(preset: str) -> List[Row]:
    """COMMON, citing the 2x LVIS file (same lines as the 1x one) for the 24-epoch runs that inherit it."""
    if "_2x" not in preset or "base10_obj_rfs_cos_norm" in preset:  # the FASA run is one flat file
        return COMMON
    return [(key, value, source.replace(L1, L2)) for key, value, source in COMMON]


def lvis_rows(preset: str, msra: bool = False) -> List[Row]:
    """Every row of ``preset``: common, backbone (torchvision or MSRA), then the preset's own."""
    return _common(preset) + (MSRA if msra else TORCHVISION) + LVIS_PRESETS[preset][1]


RD = "README.md"  # classification/README.md
TR = "train.py"
INIT = "initialisers.py"
IMB = "imbalanced_dataset.py"

CLS_COMMON: List[Row] = [
    ("MODEL.DEVICE", "auto", OURS + "CUDA when available, else CPU"),
    ("SOLVER.MOMENTUM", 0.9, f"{TR}:312 (default)"),
    ("SOLVER.WEIGHT_DECAY", 0.0001, f"{TR}:314-316 (default 1e-4)"),
    ("SOLVER.WEIGHT_DECAY_NORM", 0.0001, f"{TR}:200-201 (SGD over all parameters, BN included)"),
    ("SOLVER.WARMUP_METHOD", "linear", f"{TR}:52-56 (first epoch)"),
    ("SOLVER.WARMUP_FACTOR", 0.001, f"{TR}:53"),
    ("TEST.EVAL_PERIOD", 0, OURS + "one evaluation after the last epoch (the official script evaluates "
     f"after every epoch, {TR}:262)"),
    ("DATA.MANY_SHOT", 100, "per_shot_acc.py:62"),
    ("DATA.FEW_SHOT", 20, "per_shot_acc.py:62"),
    ("DATA.NUM_WORKERS", 4, f"{TR}:305 (default)"),
    ("IIF.VARIANT", "smooth", f"{RD} (every IIF command: --iif smooth)"),
    ("IIF.NORM_P", 0.0, f"{TR}:331 (--iif_norm default 0)"),
]


def _stage(mode: str, readme_line: int) -> List[Row]:
    if mode == "posthoc":
        return [("IIF.MODE", "posthoc", f"{RD}:{readme_line} (CE training; post-hoc IIF = the --test-only "
                 "command with --classif iif)")]
    return [("IIF.MODE", "train_test", f"{RD}:{readme_line} (--classif iif --decoup)"),
            ("MODEL.CLS.TRAINABLE", "classifier", f"{RD}:{readme_line} (--decoup: {TR}:123-146)"),
            ("SOLVER.MILESTONES", [], f"{TR}:317 (default 360, 380: never reached)"),
            ("MODEL.WEIGHTS", None, OURS + "the first stage's model_final.pth (official --load_from "
             "model_<last epoch>.pth)")]


CIFAR: List[Row] = [
    ("DATA.SOURCE", "cifar100_lt", f"{RD}:32 (--dset_name=cifar100 --imb_factor 0.01)"),
    ("DATA.ROOT", "cifar100", OURS + "folder under $DETECTRON2_DATASETS"),
    ("DATA.IMBALANCE_FACTOR", 0.01, f"{RD}:25"),
    ("DATA.NUM_CLASSES", 100, f"{RD}:32 (cifar100)"),
    ("INPUT.CLS.TRAIN_CROP", "pad", f"{INIT}:122"),
    ("INPUT.CLS.SIZE", 32, f"{INIT}:122"),
    ("INPUT.CLS.PAD", 4, f"{INIT}:122"),
    ("INPUT.CLS.AUGMENT", "autoaugment_cifar10", f"{INIT}:123 (CIFAR10Policy of the randaugment package; "
     "here torchvision's AutoAugment CIFAR10 policy)"),
    ("INPUT.CLS.CUTOUT", 16, f"{INIT}:125"),
    ("INPUT.CLS.MEAN", [0.4914, 0.4822, 0.4465], f"{INIT}:126"),
    ("INPUT.CLS.STD", [0.2023, 0.1994, 0.2010], f"{INIT}:126"),
    ("INPUT.CLS.TEST_RESIZE", 0, f"{INIT}:136-139"),
    ("MODEL.CLS.BACKBONE", "se_resnet32", f"{RD}:13"),
    ("MODEL.CLS.HEAD", "cosine", f"{RD}:16"),
    ("SOLVER.IMS_PER_BATCH", 64, f"{RD}:17 (16 per GPU) x 4 GPUs ({RD}:32)"),
    ("SOLVER.BASE_LR", 0.1, f"{RD}:19"),
    ("SOLVER.LR_SCHEDULER_NAME", "WarmupMultiStepLR", f"{TR}:226-228 (MultiStepLR)"),
    ("SOLVER.EPOCHS", 400, f"{RD}:18"),
    ("SOLVER.MILESTONES", [360, 380], f"{RD}:22"),
    ("SOLVER.GAMMA", 0.01, f"{RD}:23"),
    ("SOLVER.MIXUP_ALPHA", 0.2, f"{RD}:26"),
    ("OUTPUT_DIR", "output/iif_cls/cifar100_lt_se_r32", OURS + "output folder"),
]
CIFAR_DECOUPLED: List[Row] = [
    ("SOLVER.BASE_LR", 0.0001, f"{RD}:37"),
    ("SOLVER.EPOCHS", 20, f"{RD}:37"),
    ("SOLVER.MIXUP_ALPHA", 0.0, f"{RD}:37 (no --mixup)"),
    ("OUTPUT_DIR", "output/iif_cls/cifar100_lt_se_r32_decoupled", OURS + "output folder"),
]

IMAGENET_STYLE: List[Row] = [
    ("DATA.SOURCE", "textlist", f"{IMB}:237-238 (LT_Dataset over list files)"),
    ("INPUT.CLS.TRAIN_CROP", "resized", f"{IMB}:212"),
    ("INPUT.CLS.SIZE", 224, f"{IMB}:212"),
    ("INPUT.CLS.TEST_RESIZE", 256, f"{IMB}:228-229"),
    ("SOLVER.IMS_PER_BATCH", 256, f"{RD}:55 (64 per GPU) x 4 GPUs ({RD}:67)"),
    ("SOLVER.BASE_LR", 0.2, f"{RD}:57"),
    ("SOLVER.LR_SCHEDULER_NAME", "WarmupCosineLR", f"{RD}:60 (--cosine_scheduler; the official lr steps "
     "once per epoch, ours every iteration)"),
    ("SOLVER.MIXUP_ALPHA", 0.2, f"{RD}:61"),
]
IMAGENET: List[Row] = IMAGENET_STYLE + [
    ("DATA.ROOT", "ImageNet_LT", OURS + "folder under $DETECTRON2_DATASETS with the images and lists"),
    ("DATA.TRAIN_LIST", "ImageNet_LT_train.txt", f"{INIT}:83"),
    ("DATA.TEST_LIST", "ImageNet_LT_test.txt", f"{INIT}:84"),
    ("DATA.NUM_CLASSES", 1000, f"{INIT}:82"),
    ("INPUT.CLS.AUGMENT", "autoaugment_imagenet", f"{IMB}:214 (ImageNetPolicy of the randaugment package; "
     "here torchvision's AutoAugment IMAGENET policy)"),
    ("MODEL.CLS.BACKBONE", "seresnet50", f"{RD}:67 (se_resnet50; here timm's seresnet50, whose SE layers "
     "have biases)"),
    ("MODEL.CLS.HEAD", "cosine", f"{RD}:54"),
    ("SOLVER.EPOCHS", 200, f"{RD}:56"),
    ("OUTPUT_DIR", "output/iif_cls/imagenet_lt_se_r50", OURS + "output folder"),
]
IMAGENET_DECOUPLED: List[Row] = [
    ("SOLVER.BASE_LR", 0.00002, f"{RD}:72"),
    ("SOLVER.EPOCHS", 5, f"{RD}:72"),
    ("SOLVER.LR_SCHEDULER_NAME", "WarmupMultiStepLR", f"{RD}:72 (no --cosine_scheduler)"),
    ("OUTPUT_DIR", "output/iif_cls/imagenet_lt_se_r50_decoupled", OURS + "output folder"),
]
PLACES: List[Row] = IMAGENET_STYLE + [
    ("DATA.ROOT", "places365_standard", f"{RD}:89 (--data-path)"),
    ("DATA.TRAIN_LIST", "Places_LT_train.txt", f"{INIT}:95"),
    ("DATA.TEST_LIST", "Places_LT_test.txt", f"{INIT}:96"),
    ("DATA.NUM_CLASSES", 365, f"{INIT}:94"),
    ("INPUT.CLS.AUGMENT", "randaugment", f"{IMB}:222 (RandAugment of the randaugment package; here "
     "torchvision's RandAugment with its defaults)"),
    ("MODEL.CLS.BACKBONE", "seresnet152", f"{RD}:89 (se_resnet152; here timm's seresnet152)"),
    ("MODEL.CLS.HEAD", "lr_cosine", f"{RD}:89"),
    ("MODEL.CLS.PRETRAINED", "", OURS + "the local ImageNet SE-ResNet-152 state dict is passed on the "
     f"command line (official --pretrained, {RD}:83-89)"),
    ("MODEL.CLS.TRAINABLE", "all", f"{TR}:217-218 (the finetune_places call is commented out: every "
     f"parameter trains; {RD}:86 says to freeze all but the last block = TRAINABLE last_block)"),
    ("SOLVER.EPOCHS", 30, f"{RD}:89"),
    ("OUTPUT_DIR", "output/iif_cls/places_lt_se_r152", OURS + "output folder"),
]
PLACES_DECOUPLED: List[Row] = [
    ("SOLVER.BASE_LR", 0.00002, f"{RD}:94"),
    ("SOLVER.EPOCHS", 5, f"{RD}:94"),
    ("SOLVER.LR_SCHEDULER_NAME", "WarmupMultiStepLR", f"{RD}:94 (no --cosine_scheduler)"),
    ("OUTPUT_DIR", "output/iif_cls/places_lt_se_r152_decoupled", OURS + "output folder"),
]


def _override(base: List[Row], *updates: List[Row]) -> List[Row]:
    rows = {key: (key, value, source) for key, value, source in base}
    for update in updates:
        for key, value, source in update:
            rows[key] = (key, value, source)
    return list(rows.values())


#: classification presets (configs/classification/) -> (official command, rows); sources are in the
#: official classification/ folder
CLS_PRESETS: Dict[str, Tuple[str, List[Row]]] = {
    "cifar100_lt_se_resnet32.yaml": (f"{RD}:32", _override(CLS_COMMON, CIFAR, _stage("posthoc", 42))),
    "cifar100_lt_se_resnet32_decoupled.yaml": (f"{RD}:37", _override(
        CLS_COMMON, CIFAR, _stage("train_test", 37), CIFAR_DECOUPLED)),
    "imagenet_lt_se_resnet50.yaml": (f"{RD}:67", _override(CLS_COMMON, IMAGENET, _stage("posthoc", 77))),
    "imagenet_lt_se_resnet50_decoupled.yaml": (f"{RD}:72", _override(
        CLS_COMMON, IMAGENET, _stage("train_test", 72), IMAGENET_DECOUPLED)),
    "places_lt_se_resnet152.yaml": (f"{RD}:89", _override(CLS_COMMON, PLACES, _stage("posthoc", 99))),
    "places_lt_se_resnet152_decoupled.yaml": (f"{RD}:94", _override(
        CLS_COMMON, PLACES, _stage("train_test", 94), PLACES_DECOUPLED)),
}

#: presets with no official counterpart at all (CPU demo scale): every value is ours
SYNTHETIC_PRESETS = ("classification/synthetic_lt.yaml", "classification/synthetic_lt_decoupled.yaml",
                     "synthetic/baseline_softmax.yaml", "synthetic/iif_raw.yaml")


SYNTHETIC_DEFAULT = OURS + "the synthetic CPU preset's value; the official presets set their own"

#: every key add_iif_config adds to detectron2's defaults (detection paths as above)
ADDER_DEFAULTS: List[Row] = [
    ("MODEL.ROI_BOX_HEAD.IIF.ENABLED", False, OURS + "the softmax baseline until a preset turns IIF on"),
    ("MODEL.ROI_BOX_HEAD.IIF.VARIANT", "raw", OURS + "the variant of the official iif_r50_* configs"),
    ("MODEL.ROI_BOX_HEAD.IIF.BG_WEIGHT", 1.0, f"{IIF_LOSS}:49"),
    ("MODEL.ROI_BOX_HEAD.IIF.NORM_P", 0.0, f"{IIF_LOSS}:47-50 (no normalisation)"),
    ("MODEL.ROI_BOX_HEAD.IIF.COUNT_SOURCE", "json", OURS + "the official CSV's numbers, counted from the "
     "json"),
    ("MODEL.ROI_BOX_HEAD.IIF.CSV_PATH", "", OURS + "only for COUNT_SOURCE csv"),
    ("MODEL.ROI_BOX_HEAD.IIF.DATASETS", (), OURS + "empty = count on DATASETS.TRAIN"),
    ("MODEL.ROI_BOX_HEAD.CLS_PREDICTOR", "linear", "mmdet/models/roi_heads/bbox_heads/bbox_head.py:34"),
    ("MODEL.ROI_BOX_HEAD.CLS_INIT", "auto", OURS + "auto = the official init of the predictor in use"),
    ("MODEL.ROI_BOX_HEAD.COSINE_SCALE", 8.0, f"{RAW_COS}:8"),
    ("MODEL.ROI_MASK_HEAD.COSINE_SCALE", 20.0, f"{SOFTMAX_COS_1X}:12"),
    ("TEST.EVAL_BACKEND", "faster_coco_eval", OURS + "shared.evaluation's faster back end (tested equal to "
     "the reference tools)"),
]

#: every key add_iif_cls_config adds (classification paths as above)
CLS_ADDER_DEFAULTS: List[Row] = [
    ("DATA.SOURCE", "synthetic", SYNTHETIC_DEFAULT),
    ("DATA.ROOT", "", SYNTHETIC_DEFAULT),
    ("DATA.TRAIN_LIST", "SyntheticLT_train.txt", SYNTHETIC_DEFAULT),
    ("DATA.TEST_LIST", "SyntheticLT_test.txt", SYNTHETIC_DEFAULT),
    ("DATA.NUM_CLASSES", 10, SYNTHETIC_DEFAULT),
    ("DATA.IMBALANCE_FACTOR", 0.01, f"{RD}:25"),
    ("DATA.MANY_SHOT", 100, "per_shot_acc.py:62"),
    ("DATA.FEW_SHOT", 20, "per_shot_acc.py:62"),
    ("DATA.NUM_WORKERS", 0, OURS + "loader processes only"),
    ("INPUT.CLS.TRAIN_CROP", "pad", f"{INIT}:122"),
    ("INPUT.CLS.SIZE", 32, f"{INIT}:122"),
    ("INPUT.CLS.PAD", 4, f"{INIT}:122"),
    ("INPUT.CLS.AUGMENT", "none", SYNTHETIC_DEFAULT),
    ("INPUT.CLS.COLOR_JITTER", 0.0, SYNTHETIC_DEFAULT),
    ("INPUT.CLS.CUTOUT", 0, SYNTHETIC_DEFAULT),
    ("INPUT.CLS.MEAN", [0.485, 0.456, 0.406], f"{IMB}:212-216 (ImageNet normalisation)"),
    ("INPUT.CLS.STD", [0.229, 0.224, 0.225], f"{IMB}:212-216"),
    ("INPUT.CLS.TEST_RESIZE", 0, f"{INIT}:136-139 (no resize: CIFAR)"),
    ("MODEL.CLS.BACKBONE", "resnet10t", SYNTHETIC_DEFAULT),
    ("MODEL.CLS.HEAD", "linear", f"{TR} (--classif_norm default: a plain linear classifier)"),
    ("MODEL.CLS.PRETRAINED", "", OURS + "a local state dict on the command line"),
    ("MODEL.CLS.TRAINABLE", "all", f"{TR}:217-218 (every parameter trains)"),
    ("SOLVER.EPOCHS", 30, SYNTHETIC_DEFAULT),
    ("SOLVER.MILESTONES", [], SYNTHETIC_DEFAULT),
    ("SOLVER.MIXUP_ALPHA", 0.0, f"{TR} (no --mixup)"),
    ("IIF.MODE", "posthoc", f"{RD} (the post-hoc IIF commands, --test-only)"),
    ("IIF.VARIANT", "smooth", f"{RD} (every IIF command: --iif smooth)"),
    ("IIF.NORM_P", 0.0, f"{TR}:331 (--iif_norm default 0)"),
]


def _value(value: Any) -> str:
    if value is None:
        return "the first stage's `model_final.pth`"
    return f'`"{value}"`' if isinstance(value, str) else f"`{value}`"


def markdown_table(rows: List[Row]) -> str:
    """key | value | source, with the values that are ours marked."""
    return _table(("key", "value", "source"),
                  ((f"`{key}`", _value(value), source_cell(source)) for key, value, source in rows))


def presets_markdown() -> str:
    """The text of projects/IIF/PRESETS.md (a test keeps the file equal to it)."""
    parts = [
        "# IIF presets, key by key, with their official sources",
        "",
        "Generated from `tests/iif/iif_provenance.py` (`python tests/iif/iif_provenance.py > "
        "projects/IIF/PRESETS.md`); `tests/iif/test_iif_presets.py` holds every preset's resolved config "
        "against these rows and fails on any key a preset sets without a row. Sources are files and lines "
        "of the official IIF repository (github.com/kostas1515/iif): detection paths under "
        "`instance_segmentation/`, classification paths under `classification/`. **ours** marks a value "
        "with no official counterpart, with the reason.",
        "",
        "## LVIS v1 instance segmentation",
        "",
        "### Every LVIS preset",
        "",
        markdown_table(COMMON),
        "",
        "### Backbone of `configs/LVIS-InstanceSegmentation/` (torchvision R-50, the official backbone)",
        "",
        markdown_table(TORCHVISION),
        "",
        "### Backbone of `configs/LVIS-InstanceSegmentation-MSRA/` (detectron2's MSRA R-50.pkl)",
        "",
        markdown_table(MSRA),
    ]
    for name, (official, rows) in LVIS_PRESETS.items():
        parts += ["", f"### `{name}`", "", f"Official run: `{official}`.", "", markdown_table(rows)]
    parts += ["", "## Long-tailed classification", "",
              "Synthetic presets (" + ", ".join(f"`{n}`" for n in SYNTHETIC_PRESETS) + ") are **ours** "
              "throughout: CPU demo scale, no official counterpart."]
    for name, (official, rows) in CLS_PRESETS.items():
        parts += ["", f"### `{name}`", "", f"Official command: `{official}`.", "", markdown_table(rows)]
    parts += ["", "## Defaults of the config adders", "",
              "Every key `add_iif_config` / `add_iif_cls_config` add to detectron2's defaults, with its "
              "source (a preset that sets a key overrides it; the rows above hold the presets).", "",
              "### `add_iif_config` (detection)", "", markdown_table(ADDER_DEFAULTS), "",
              "### `add_iif_cls_config` (classification)", "", markdown_table(CLS_ADDER_DEFAULTS)]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(presets_markdown(), end="")
