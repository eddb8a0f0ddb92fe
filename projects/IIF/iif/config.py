"""Config keys of the IIF project (detectron2 v0.6 yacs config)."""
from detectron2.config import CfgNode as CN

from shared.engine.validation import check_choice, check_positive, check_range, config_check
from shared.evaluation.config import add_evaluation_config, check_eval_backend


def add_iif_config(cfg: CN) -> None:
    """Add the IIF keys (each documented inline) to a detectron2 config, in place."""
    box_head = cfg.MODEL.ROI_BOX_HEAD
    box_head.IIF = CN()
    # Multiply the box-classifier logits (foreground and background) by the IIF weights, in training
    # (softmax CE) and at inference (softmax). False = the plain softmax baseline with the same head.
    box_head.IIF.ENABLED = False
    # Variant name: raw | smooth | rel (alias prob) | normit | gombit | base2 | base10, each optionally
    # with the `_obj` suffix (instance counts instead of image counts). See iif/weights.py.
    box_head.IIF.VARIANT = "raw"
    # Where the per-class counts come from: "json" (LVIS `image_count`/`instance_count` of the training
    # datasets' json files), "dicts" (counted from the registered dataset dicts; any COCO-style dataset),
    # "csv" (precomputed weights read by column name from CSV_PATH), or "checkpoint" (the weights saved in
    # MODEL.WEIGHTS, a trained IIF model; used to load a run for prediction without its dataset).
    box_head.IIF.COUNT_SOURCE = "json"
    # CSV with one column per variant (official idf_1204.csv layout); only for COUNT_SOURCE "csv".
    box_head.IIF.CSV_PATH = ""
    # Datasets whose counts define the weights; empty = DATASETS.TRAIN.
    box_head.IIF.DATASETS = ()
    # Divide the foreground weights by their p-norm when > 0 (classification code's `iif_norm`); 0 = off.
    box_head.IIF.NORM_P = 0.0
    # Weight of the background logit (last class index, K).
    box_head.IIF.BG_WEIGHT = 1.0

    # Box classifier: "linear" (nn.Linear) or "cosine" (L2-normalised features and weights x COSINE_SCALE).
    box_head.CLS_PREDICTOR = "linear"
    # Temperature of the cosine classifier (8 in the official IIF configs, 20 in their softmax baseline).
    box_head.COSINE_SCALE = 8.0
    # Classifier initialisation: "auto" (= "iif" for a linear IIF classifier, else "default"), "default"
    # (normal std 0.01, bias 0: detectron2, and the official cosine runs), "iif" (constant 0.001, bias 0,
    # the official linear IIF runs), "softmax_baseline" (constant 0.001, bias -6.5, the official softmax
    # baselines).
    box_head.CLS_INIT = "auto"

    # Temperature of the cosine mask predictor (NormedConv2d, 20 in the official runs); used by
    # MODEL.ROI_MASK_HEAD.NAME "NormedMaskRCNNConvUpsampleHead".
    cfg.MODEL.ROI_MASK_HEAD.COSINE_SCALE = 20.0
    # TEST.EVAL_BACKEND: "faster_coco_eval" (default) or "lvis" (lvis-api; shared.evaluation)
    add_evaluation_config(cfg)


@config_check(add_iif_config)
def _check_iif_config(cfg: CN) -> None:
    """Value checks run by ``shared.engine.build_cfg`` once the yaml and overrides are merged."""
    check_choice(cfg, "MODEL.ROI_BOX_HEAD.IIF.COUNT_SOURCE", ("json", "dicts", "csv", "checkpoint"))
    check_choice(cfg, "MODEL.ROI_BOX_HEAD.CLS_PREDICTOR", ("linear", "cosine"))
    check_choice(cfg, "MODEL.ROI_BOX_HEAD.CLS_INIT", ("auto", "default", "iif", "softmax_baseline"))
    check_range(cfg, "MODEL.ROI_BOX_HEAD.IIF.NORM_P", low=0.0)
    check_range(cfg, "MODEL.ROI_BOX_HEAD.IIF.BG_WEIGHT")
    check_positive(cfg, "MODEL.ROI_BOX_HEAD.COSINE_SCALE")
    check_positive(cfg, "MODEL.ROI_MASK_HEAD.COSINE_SCALE")


config_check(add_iif_config)(check_eval_backend)
