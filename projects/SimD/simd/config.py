"""Config keys of the SimD project (added on top of detectron2's defaults by :func:`add_simd_config`),
and the checks :func:`shared.engine.build_cfg` runs on them before any data or model is loaded.

The adder only adds keys; values that differ from detectron2's defaults (``MODEL.DEVICE "auto"``, anchors,
thresholds, ...) are set in the base yaml files under ``configs/``.
"""
from detectron2.config import CfgNode as CN

from shared.engine.validation import (ConfigValueError, check_choice, check_positive, check_range,
                                      config_check, get_key)
from shared.evaluation.config import add_evaluation_config, check_eval_backend
from shared.kernels import NMS_KINDS
from simd.matcher import LOW_QUALITY_MATCHERS
from simd.similarity import NORM_MODES, UNSET, similarity_kind


def add_simd_config(cfg: CN) -> None:
    """Add the SimD keys to ``cfg`` in place."""
    # --- SimD similarity (simd.similarity) --------------------------------------------------------------
    cfg.MODEL.SIMD = CN()
    # normaliser m of the x terms; required when any similarity below is "simd". -1 = not set: then
    # ESTIMATE_NORMALISERS must be on (or building the model raises). VisDrone preset: 6.13.
    cfg.MODEL.SIMD.M = UNSET
    # normaliser n of the y terms (VisDrone preset: 4.59); -1 = not set, as for M
    cfg.MODEL.SIMD.N = UNSET
    # added to centres / widths / heights, and the lower clamp of the output
    cfg.MODEL.SIMD.EPS = 1e-6
    # "multiply" (official code: m * dx / (w_a + w_b)) or "divide" (dx / (w_a + w_b) / m), for experiments
    cfg.MODEL.SIMD.NORM_MODE = "multiply"
    # when M / N are not given: take them from a SimD checkpoint given as MODEL.WEIGHTS, else estimate them
    # from the training set's GT boxes and the anchor layout (cached in OUTPUT_DIR/simd_normalisers.json,
    # logged); the values used are written into OUTPUT_DIR/config.yaml and every checkpoint
    cfg.MODEL.SIMD.ESTIMATE_NORMALISERS = False
    # at most this many training images are read by the estimator (0 = all of them)
    cfg.MODEL.SIMD.ESTIMATE_MAX_IMAGES = 0

    # --- companion similarities ----------------------------------------------------------------------------
    cfg.MODEL.NWD = CN()
    # C in NWD = exp(-W2 / C): the dataset's average absolute object size (AI-TOD paper: 12.8)
    cfg.MODEL.NWD.CONSTANT = 12.8
    cfg.MODEL.DOTD = CN()
    # S in DotD = exp(-||c_a - c_b|| / S) (mmdet-aitod passes 12.7)
    cfg.MODEL.DOTD.CONSTANT = 12.7

    # --- RPN (simd.modeling.rpn.SimilarityRPN) ------------------------------------------------------------
    # similarity used to label anchors (replaces pairwise_iou); thresholds stay RPN.IOU_THRESHOLDS
    cfg.MODEL.RPN.SIMILARITY = "iou"
    # "mmdet": MaxIoUAssigner semantics (low-quality step gated by MIN_POS_SIM, GT index reassigned);
    # "detectron2": detectron2's Matcher(allow_low_quality_matches=True)
    cfg.MODEL.RPN.LOW_QUALITY_MODE = "mmdet"
    # mmdet's min_pos_iou: a GT whose best anchor scores below this gets no low-quality positive
    cfg.MODEL.RPN.MIN_POS_SIM = 0.3
    # mmdet's gt_max_assign_all ("mmdet" mode): every anchor tied at a GT's best quality becomes positive
    # (True, mmdet's default) or only the GT's first best anchor (False)
    cfg.MODEL.RPN.GT_MAX_ASSIGN_ALL = True
    # similarity of the proposal NMS; "iou" uses detectron2's batched_nms with RPN.NMS_THRESH
    cfg.MODEL.RPN.NMS_SIMILARITY = "iou"
    # suppression threshold when NMS_SIMILARITY is not "iou" (no published value for SimD-NMS)
    cfg.MODEL.RPN.SIM_NMS_THRESH = 0.7

    # --- ROI heads (simd.modeling.roi_heads) --------------------------------------------------------------
    # similarity used to label proposals (all stages of Cascade R-CNN); thresholds stay IOU_THRESHOLDS
    cfg.MODEL.ROI_HEADS.SIMILARITY = "iou"
    # similarity of the final per-class NMS; "iou" uses NMS_THRESH_TEST
    cfg.MODEL.ROI_HEADS.NMS_SIMILARITY = "iou"
    # suppression threshold when NMS_SIMILARITY is not "iou"
    cfg.MODEL.ROI_HEADS.SIM_NMS_THRESH_TEST = 0.5

    # --- RetinaNet (simd.modeling.retinanet.SimilarityRetinaNet) ------------------------------------------
    # similarity used to label anchors; thresholds stay RETINANET.IOU_THRESHOLDS
    cfg.MODEL.RETINANET.SIMILARITY = "iou"
    # low-quality semantics, as for the RPN ("detectron2" reproduces stock RetinaNet)
    cfg.MODEL.RETINANET.LOW_QUALITY_MODE = "detectron2"
    # min_pos gate of the "mmdet" mode (mmdet's RetinaNet uses 0)
    cfg.MODEL.RETINANET.MIN_POS_SIM = 0.0
    # gt_max_assign_all of the "mmdet" mode, as MODEL.RPN.GT_MAX_ASSIGN_ALL
    cfg.MODEL.RETINANET.GT_MAX_ASSIGN_ALL = True
    # similarity of the final NMS; "iou" uses NMS_THRESH_TEST
    cfg.MODEL.RETINANET.NMS_SIMILARITY = "iou"
    # suppression threshold when NMS_SIMILARITY is not "iou"
    cfg.MODEL.RETINANET.SIM_NMS_THRESH_TEST = 0.5

    # --- datasets (simd.datasets) --------------------------------------------------------------------------
    # a box with a non-finite number or a non-positive width/height in a training/test json is an error naming
    # the file, annotation id and field (False); True drops such boxes and logs how many (the m/n estimator
    # and training read the same records, so they see the same boxes)
    cfg.DATASETS.DROP_INVALID_BOXES = False

    # --- schedule in epochs (simd.trainer.resolve_epoch_schedule) -----------------------------------------
    # > 0: train this many epochs of the training set as loaded (after DATALOADER.FILTER_EMPTY_ANNOTATIONS),
    # as mmdet's epoch-based runs: with N training images and E = ceil(N / SOLVER.IMS_PER_BATCH) iterations
    # per epoch, MAX_ITER = EPOCHS * E, STEPS = STEP_EPOCHS * E and CHECKPOINT_PERIOD = E are set when
    # training starts (logged). 0: MAX_ITER / STEPS / CHECKPOINT_PERIOD as the config gives them.
    cfg.SOLVER.EPOCHS = 0
    # epochs after which the learning rate is multiplied by SOLVER.GAMMA (mmdet schedule_1x: 8 and 11)
    cfg.SOLVER.STEP_EPOCHS = (8, 11)

    # --- evaluation (simd.evaluation) ----------------------------------------------------------------------
    cfg.TEST.SIMD_EVAL = CN()
    # "aitod" (AI-TOD / AI-TOD-v2 area ranges, AP at 1500), "sodad" (SODA-D, AP at 100) or "coco"
    cfg.TEST.SIMD_EVAL.PROTOCOL = "aitod"
    # maxDets of the protocol; empty = the protocol's default ([100, 300, 1500] / [100, 300, 1000] /
    # detectron2's [1, 10, 100] for "coco"; the VisDrone presets set
    # [100, 300, 1000], mmdet CocoMetric's proposal_nums)
    cfg.TEST.SIMD_EVAL.MAX_DETS = []
    # TEST.EVAL_BACKEND: "faster_coco_eval" (default) or "pycocotools" (shared.evaluation)
    add_evaluation_config(cfg)


# --- checks run by shared.engine.build_cfg -------------------------------------------------------------
_SIMILARITY_KEYS = ("MODEL.RPN.SIMILARITY", "MODEL.ROI_HEADS.SIMILARITY", "MODEL.RETINANET.SIMILARITY")
_NMS_KEYS = ("MODEL.RPN.NMS_SIMILARITY", "MODEL.ROI_HEADS.NMS_SIMILARITY", "MODEL.RETINANET.NMS_SIMILARITY")
_UNIT_INTERVAL_KEYS = ("MODEL.RPN.MIN_POS_SIM", "MODEL.RETINANET.MIN_POS_SIM", "MODEL.RPN.SIM_NMS_THRESH",
                       "MODEL.ROI_HEADS.SIM_NMS_THRESH_TEST", "MODEL.RETINANET.SIM_NMS_THRESH_TEST")
_THRESHOLD_LIST_KEYS = ("MODEL.RPN.IOU_THRESHOLDS", "MODEL.ROI_HEADS.IOU_THRESHOLDS",
                        "MODEL.RETINANET.IOU_THRESHOLDS")


@config_check(add_simd_config)
def _check_similarity_names(cfg: CN) -> None:
    for key in _SIMILARITY_KEYS + _NMS_KEYS:
        similarity_kind(get_key(cfg, key), key)
    for key in _NMS_KEYS:
        check_choice(cfg, key, NMS_KINDS)
    for key in ("MODEL.RPN.LOW_QUALITY_MODE", "MODEL.RETINANET.LOW_QUALITY_MODE"):
        check_choice(cfg, key, LOW_QUALITY_MATCHERS)


@config_check(add_simd_config)
def _check_thresholds(cfg: CN) -> None:
    """Similarities (IoU, mapped GIoU-family, NWD, DotD, SimD) live in [0, 1]; so do their thresholds."""
    for key in _UNIT_INTERVAL_KEYS:
        check_range(cfg, key, low=0.0, high=1.0)
    for key in _THRESHOLD_LIST_KEYS:
        values = list(get_key(cfg, key))
        if any(not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0 for v in values):
            raise ConfigValueError(key, values, "every threshold must be a number in [0, 1]")


@config_check(add_simd_config)
def _check_simd_parameters(cfg: CN) -> None:
    check_choice(cfg, "MODEL.SIMD.NORM_MODE", NORM_MODES)
    check_positive(cfg, "MODEL.SIMD.EPS")
    for key in ("MODEL.SIMD.M", "MODEL.SIMD.N"):
        if get_key(cfg, key) != UNSET:
            check_positive(cfg, key)
    check_range(cfg, "MODEL.SIMD.ESTIMATE_MAX_IMAGES", low=0)
    check_positive(cfg, "MODEL.NWD.CONSTANT")
    check_positive(cfg, "MODEL.DOTD.CONSTANT")


@config_check(add_simd_config)
def _check_evaluation(cfg: CN) -> None:
    from simd.evaluation import PROTOCOL_NAMES  # imported on use: pycocotools is not needed to build a cfg

    check_choice(cfg, "TEST.SIMD_EVAL.PROTOCOL", PROTOCOL_NAMES)


config_check(add_simd_config)(check_eval_backend)


@config_check(add_simd_config)
def _check_epoch_schedule(cfg: CN) -> None:
    """SOLVER.EPOCHS >= 0; with EPOCHS > 0 the STEP_EPOCHS ascend and lie in 1 .. EPOCHS - 1."""
    check_range(cfg, "SOLVER.EPOCHS", low=0)
    epochs, steps = cfg.SOLVER.EPOCHS, list(cfg.SOLVER.STEP_EPOCHS)
    if epochs > 0 and (steps != sorted(steps) or any(not 0 < s < epochs for s in steps)):
        raise ConfigValueError("SOLVER.STEP_EPOCHS", tuple(steps),
                               f"must ascend within 1 .. SOLVER.EPOCHS - 1 = {epochs - 1}")
