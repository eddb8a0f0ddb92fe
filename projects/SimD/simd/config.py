"""Config keys of the SimD project (added on top of detectron2's defaults by :func:`add_simd_config`)."""
from detectron2.config import CfgNode as CN

from shared.evaluation.config import add_evaluation_config

# similarity names understood by every key below (see simd.similarity)
SIMILARITY_KINDS = ("iou", "giou", "diou", "ciou", "nwd", "dotd", "simd")
LOW_QUALITY_MODES = ("mmdet", "detectron2")
NORM_MODES = ("multiply", "divide")
UNSET = -1.0  # value of MODEL.SIMD.M / N that means "not given"


def add_simd_config(cfg: CN) -> None:
    """Add the SimD keys to ``cfg`` in place."""
    # "auto" = CUDA when available, else CPU (resolved by simd.engine.build_cfg); detectron2's default "cuda"
    # fails on CPU-only machines
    cfg.MODEL.DEVICE = "auto"
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
    # estimate m, n from the training set's GT boxes and the anchor layout at training start
    # (cached in OUTPUT_DIR/simd_normalisers.json, logged); overrides M / N when on
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

    # --- RPN (simd.rpn.SimilarityRPN) ----------------------------------------------------------------------
    # similarity used to label anchors (replaces pairwise_iou); thresholds stay RPN.IOU_THRESHOLDS
    cfg.MODEL.RPN.SIMILARITY = "iou"
    # "mmdet": MaxIoUAssigner semantics (low-quality step gated by MIN_POS_SIM, GT index reassigned);
    # "detectron2": detectron2's Matcher(allow_low_quality_matches=True)
    cfg.MODEL.RPN.LOW_QUALITY_MODE = "mmdet"
    # mmdet's min_pos_iou: a GT whose best anchor scores below this gets no low-quality positive
    cfg.MODEL.RPN.MIN_POS_SIM = 0.3
    # similarity of the proposal NMS; "iou" uses detectron2's batched_nms with RPN.NMS_THRESH
    cfg.MODEL.RPN.NMS_SIMILARITY = "iou"
    # suppression threshold when NMS_SIMILARITY is not "iou" (no published value for SimD-NMS)
    cfg.MODEL.RPN.SIM_NMS_THRESH = 0.7

    # --- ROI heads (simd.roi_heads) --------------------------------------------------------------------
    # similarity used to label proposals (all stages of Cascade R-CNN); thresholds stay IOU_THRESHOLDS
    cfg.MODEL.ROI_HEADS.SIMILARITY = "iou"
    # similarity of the final per-class NMS; "iou" uses NMS_THRESH_TEST
    cfg.MODEL.ROI_HEADS.NMS_SIMILARITY = "iou"
    # suppression threshold when NMS_SIMILARITY is not "iou"
    cfg.MODEL.ROI_HEADS.SIM_NMS_THRESH_TEST = 0.5

    # --- RetinaNet (simd.retinanet.SimilarityRetinaNet) ---------------------------------------------------
    # similarity used to label anchors; thresholds stay RETINANET.IOU_THRESHOLDS
    cfg.MODEL.RETINANET.SIMILARITY = "iou"
    # low-quality semantics, as for the RPN ("detectron2" reproduces stock RetinaNet)
    cfg.MODEL.RETINANET.LOW_QUALITY_MODE = "detectron2"
    # min_pos gate of the "mmdet" mode (mmdet's RetinaNet uses 0)
    cfg.MODEL.RETINANET.MIN_POS_SIM = 0.0
    # similarity of the final NMS; "iou" uses NMS_THRESH_TEST
    cfg.MODEL.RETINANET.NMS_SIMILARITY = "iou"
    # suppression threshold when NMS_SIMILARITY is not "iou"
    cfg.MODEL.RETINANET.SIM_NMS_THRESH_TEST = 0.5

    # --- evaluation (simd.evaluation) ----------------------------------------------------------------------
    cfg.TEST.SIMD_EVAL = CN()
    # "aitod" (AI-TOD / AI-TOD-v2 area ranges, AP at 1500), "sodad" (SODA-D, AP at 100) or "coco"
    cfg.TEST.SIMD_EVAL.PROTOCOL = "aitod"
    # maxDets of the protocol; empty = the protocol's default ([100, 300, 1500] / [100, 300, 1000] /
    # [1, 10, 1000] for VisDrone's COCO protocol)
    cfg.TEST.SIMD_EVAL.MAX_DETS = []
    # TEST.EVAL_BACKEND: "faster_coco_eval" (default) or "pycocotools" (shared.evaluation)
    add_evaluation_config(cfg)
