"""Config keys of the RDCD project (a detectron2 ``CfgNode``; every key carries a comment).

Build a config with the front door, ``shared.engine.build_cfg(add_rdcd_config, "configs/Base-RDCD.yaml",
opts)``;
the adder only ADDS keys. Values of detectron2's own keys for this project (``MODEL.META_ARCHITECTURE``,
``SOLVER.*``, ``DATASETS.TRAIN/TEST``) live in ``configs/Base-RDCD.yaml``, which every yaml inherits.
"""

from __future__ import annotations

import os

from detectron2.config import CfgNode as CN

from shared.engine.validation import (
    ConfigValueError,
    check_choice,
    check_positive,
    check_range,
    config_check,
)

#: the base yaml every RDCD config inherits (the official DISC21 recipe)
BASE_CONFIG = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "Base-RDCD.yaml"
)


def add_rdcd_config(cfg: CN) -> None:
    """Add the RDCD / SSCD keys to ``cfg`` in place (defaults = the official DISC21 recipe, RDCD
    ``train.sh``).

    ``MODEL.META_ARCHITECTURE`` ("RDCD" or "SSCD", registered in detectron2's ``META_ARCH_REGISTRY``) is set
    by the yaml files.
    """
    # convert BatchNorm to SyncBatchNorm when training with several CUDA processes (the official recipe)
    cfg.MODEL.SYNC_BN = True

    cfg.MODEL.RDCD = CN()
    # teacher descriptor network (rdcd.modeling.networks.NETWORK_REGISTRY): sscd_r50 | sscd_rx101 |
    # dino_vitb8 | sscd_r18 ...
    cfg.MODEL.RDCD.TEACHER = "sscd_r50"
    # local teacher weights: SSCD TorchScript, torchvision/timm state dict or a checkpoint of our SSCD
    # trainer;
    # "" = random init (only meaningful for smoke tests: a random teacher teaches nothing)
    cfg.MODEL.RDCD.TEACHER_WEIGHTS = ""
    # how the frozen teacher's BatchNorm runs: "batch" = batch statistics (the official Lightning code: the
    # teacher is frozen once, then Lightning puts the whole module in train mode) or "frozen" = running
    # statistics (eval mode); the teacher's weights never change in either mode
    cfg.MODEL.RDCD.TEACHER_BN = "batch"
    # student backbone in the official layout (rdcd.modeling.networks.STUDENT_BACKBONE_REGISTRY,
    # pretrained=False):
    # efficientnet_b0 | mobilenet_v3_large (torchvision) | fastvit_t12 (timm) | resnet18 | resnet50
    cfg.MODEL.RDCD.STUDENT = "efficientnet_b0"
    # optional local student weights: an official RDCD checkpoint (.ckpt), a checkpoint of this trainer or
    # ImageNet backbone weights (torchvision / timm; the 1000-class classifier is skipped); "" = random init
    cfg.MODEL.RDCD.STUDENT_WEIGHTS = ""
    # distillation space = teacher descriptor dimension (512 for SSCD, 1536 for DINO ViT-B/8)
    cfg.MODEL.RDCD.KD_DIM = 512
    # compact descriptor dimension (64 / 128 / 256 in the paper)
    cfg.MODEL.RDCD.DIM = 256
    # GeM pooling exponent p
    cfg.MODEL.RDCD.GEM_P = 3.0

    cfg.MODEL.RDCD.MOCO = CN()
    # momentum m of the key encoder: theta_k <- m * theta_k + (1 - m) * theta_q
    cfg.MODEL.RDCD.MOCO.MOMENTUM = 0.99
    # number K of compact key descriptors kept as negatives
    cfg.MODEL.RDCD.MOCO.QUEUE = 65536
    # InfoNCE temperature T (0.07 in the official script; its argparse default 0.1 is unused)
    cfg.MODEL.RDCD.MOCO.TEMP = 0.07
    # shuffle the key batch across BN (across processes under DDP, within the process otherwise)
    cfg.MODEL.RDCD.MOCO.SHUFFLE_BN = True

    cfg.MODEL.RDCD.LOSS = CN()
    # lambda_moco: multiplies InfoNCE AND the hard-negative term (as in the official code)
    cfg.MODEL.RDCD.LOSS.MOCO_W = 1.0
    # lambda_hn of the hard-negative term -mean log(clamp(1 - max_k q.Queue_k, HN_EPS))
    cfg.MODEL.RDCD.LOSS.HN_W = 5.0
    # clamp floor of the hard-negative term
    cfg.MODEL.RDCD.LOSS.HN_EPS = 1e-3
    # lambda_kd of the relational distillation loss
    cfg.MODEL.RDCD.LOSS.KD_W = 1.0
    # temperature of both similarity distributions of the relational loss
    cfg.MODEL.RDCD.LOSS.KD_TEMP = 0.04
    # size of the teacher-embedding queue of the relational loss
    cfg.MODEL.RDCD.LOSS.KD_QUEUE = 65536
    # "one_queue" (student and teacher both against the teacher queue, CompRess-1q; default) or
    # "two_queue" (student against a queue of its own embeddings, CompRess-2q)
    cfg.MODEL.RDCD.LOSS.KD_MODE = "one_queue"

    cfg.MODEL.SSCD = CN()
    # descriptor network trained by the SSCD meta-architecture (same registry as the teacher)
    cfg.MODEL.SSCD.NETWORK = "sscd_r50"
    # descriptor dimension
    cfg.MODEL.SSCD.DIM = 512
    # GeM pooling exponent p
    cfg.MODEL.SSCD.GEM_P = 3.0
    # InfoNCE temperature tau
    cfg.MODEL.SSCD.INFONCE_TEMP = 0.05
    # lambda of the KoLeo entropy term (30 in SSCD; the authors advise 10 on new setups)
    cfg.MODEL.SSCD.ENTROPY_W = 30.0

    cfg.INPUT.COPY_DETECTION = CN()
    # training crop side (RandomResizedCrop)
    cfg.INPUT.COPY_DETECTION.TRAIN_SIZE = 224
    # training augmentation pipeline: "advanced" (SSCD/RDCD) or "basic" (crop + flip + colour only)
    cfg.INPUT.COPY_DETECTION.AUGMENTATION = "advanced"
    # evaluation size
    cfg.INPUT.COPY_DETECTION.TEST_SIZE = 288
    # "square" = resize to TEST_SIZE x TEST_SIZE (RDCD); "short_side" = short side to TEST_SIZE, keep aspect
    # (SSCD)
    cfg.INPUT.COPY_DETECTION.TEST_RESIZE = "square"
    # TrueType font for text overlays: "" = SSCD's (AugLy's 364 fonts, each with its own character set) when
    # AugLy is
    # installed, else DejaVuSans (our fallback); a path forces that one font (and our fallback overlays)
    cfg.INPUT.COPY_DETECTION.FONT = ""
    # per-channel normalisation (RGB, 0-1 scale): ImageNet statistics
    cfg.INPUT.COPY_DETECTION.MEAN = [0.485, 0.456, 0.406]
    cfg.INPUT.COPY_DETECTION.STD = [0.229, 0.224, 0.225]

    cfg.TEST.COPY_DETECTION = CN()
    # candidates per query (k nearest references)
    cfg.TEST.COPY_DETECTION.K = 10
    # "per_query": the K nearest references of every query (SSCD's and RDCD's disc_eval default);
    # "global": exactly the K x num_queries best pairs overall (SSCD's --global_candidates)
    cfg.TEST.COPY_DETECTION.CANDIDATES = "per_query"
    # write descriptors (ISC h5 layout, or .npy + ids without h5py) and predictions.csv to
    # OUTPUT_DIR/inference/<dataset>/ at every evaluation (rdcd.evaluation)
    cfg.TEST.COPY_DETECTION.EXPORT = True
    # also report muAPsn: subtract BETA * mean(top-NORM_K inner products against the background set)
    cfg.TEST.COPY_DETECTION.SCORE_NORM = True
    cfg.TEST.COPY_DETECTION.BETA = 1.0
    cfg.TEST.COPY_DETECTION.NORM_K = 3
    # PCA-whitening dimension trained on the background descriptors (0 = off), then L2 normalisation
    cfg.TEST.COPY_DETECTION.PCAW_DIM = 0
    # use at most this many background images for score normalisation / PCA-whitening (0 = all); recorded
    # next to the results because subsets change the numbers
    cfg.TEST.COPY_DETECTION.BACKGROUND_SUBSET = 0
    # batch size when extracting descriptors
    cfg.TEST.COPY_DETECTION.BATCH_SIZE = 64

    # "SGD" (RDCD), "LARS" (SSCD) or "AdamW"
    cfg.SOLVER.OPTIMIZER = "SGD"
    # LARS trust coefficient and epsilon
    cfg.SOLVER.LARS_TRUST = 0.001
    cfg.SOLVER.LARS_EPS = 1e-8
    # the embedded synthetic DISC21-style set (dataset name "synthetic_disc21"), generated on first use
    cfg.DATASETS.SYNTHETIC_COPY_DETECTION = CN()
    # folder under $DETECTRON2_DATASETS (default ./datasets)
    cfg.DATASETS.SYNTHETIC_COPY_DETECTION.ROOT = "synthetic_disc21"
    # number of reference images / queries that copy a reference / unrelated queries / background images
    cfg.DATASETS.SYNTHETIC_COPY_DETECTION.NUM_REFERENCES = 200
    cfg.DATASETS.SYNTHETIC_COPY_DETECTION.NUM_MATCHING_QUERIES = 100
    cfg.DATASETS.SYNTHETIC_COPY_DETECTION.NUM_DISTRACTOR_QUERIES = 100
    cfg.DATASETS.SYNTHETIC_COPY_DETECTION.NUM_TRAIN = 300
    # side of the generated square images (pixels)
    cfg.DATASETS.SYNTHETIC_COPY_DETECTION.IMAGE_SIZE = 96
    # generator seed
    cfg.DATASETS.SYNTHETIC_COPY_DETECTION.SEED = 0


#: the official SGD recipe (RDCD train.sh): learning rate 1.0 for a global batch of 256, scaled linearly
SGD_LR_PER_256 = 1.0
#: how far above the linearly scaled official rate an SGD learning rate may go (ours: a margin for batches
#: that are not a power of two, not a measured stability limit)
SGD_LR_TOLERANCE = 2.0


def max_sgd_learning_rate(batch_size: int) -> float:
    """Largest accepted SGD ``SOLVER.BASE_LR`` for a global batch ``B``:
    ``SGD_LR_TOLERANCE * SGD_LR_PER_256 * B / 256`` (the linear scaling rule of the official recipe)."""
    return SGD_LR_TOLERANCE * SGD_LR_PER_256 * batch_size / 256.0


@config_check(add_rdcd_config)
def check_learning_rate_for_batch(cfg: CN) -> None:
    """Plain SGD with the recipe's learning rate and a small batch diverges (the run then fails only at
    evaluation, on NaN descriptors): refuse ``SOLVER.BASE_LR`` above :func:`max_sgd_learning_rate`.
    LARS and AdamW adapt their step sizes and are not checked."""
    check_positive(cfg, "SOLVER.IMS_PER_BATCH")
    check_positive(cfg, "SOLVER.BASE_LR")
    if cfg.SOLVER.OPTIMIZER != "SGD":
        return
    batch, lr = cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.BASE_LR
    limit = max_sgd_learning_rate(batch)
    if lr > limit:
        raise ConfigValueError(
            "SOLVER.BASE_LR", lr,
            f"is too large for SOLVER.IMS_PER_BATCH={batch} with SOLVER.OPTIMIZER SGD: the official recipe "
            f"scales {SGD_LR_PER_256} x batch / 256 = {SGD_LR_PER_256 * batch / 256:g} (accepted up to "
            f"{limit:g}); larger rates diverge to NaN descriptors",
        )


@config_check(add_rdcd_config)
def check_rdcd_config(cfg: CN) -> None:
    """Every RDCD value checked when the config is built (:func:`shared.engine.build_cfg`), before any data or
    model is loaded; each error names its key."""
    from detectron2.modeling import META_ARCH_REGISTRY

    from rdcd.modeling.networks import NETWORK_REGISTRY, STUDENT_BACKBONE_REGISTRY
    from rdcd.modeling.relational import RELATIONAL_KD_MODES
    from rdcd.solver import OPTIMIZERS
    from rdcd.transforms import AUGMENTATIONS, TEST_RESIZE

    # temperatures divide similarities: 0 gives inf, < 0 inverts the ranking
    for key in ("MODEL.RDCD.MOCO.TEMP", "MODEL.RDCD.LOSS.KD_TEMP", "MODEL.SSCD.INFONCE_TEMP"):
        check_positive(cfg, key)
    # theta_k <- m theta_k + (1 - m) theta_q: m = 1 never updates the key encoder
    check_range(cfg, "MODEL.RDCD.MOCO.MOMENTUM", low=0.0, high=1.0, high_inclusive=False)
    for key in (
        "MODEL.RDCD.MOCO.QUEUE",
        "MODEL.RDCD.LOSS.KD_QUEUE",
        "MODEL.RDCD.KD_DIM",
        "MODEL.RDCD.DIM",
        "MODEL.SSCD.DIM",
        "MODEL.RDCD.GEM_P",
        "MODEL.SSCD.GEM_P",
        "MODEL.RDCD.LOSS.HN_EPS",
        "INPUT.COPY_DETECTION.TRAIN_SIZE",
        "INPUT.COPY_DETECTION.TEST_SIZE",
        "TEST.COPY_DETECTION.K",
        "TEST.COPY_DETECTION.NORM_K",
        "TEST.COPY_DETECTION.BATCH_SIZE",
    ):
        check_positive(cfg, key)
    for key in (
        "MODEL.RDCD.LOSS.MOCO_W",
        "MODEL.RDCD.LOSS.HN_W",
        "MODEL.RDCD.LOSS.KD_W",
        "MODEL.SSCD.ENTROPY_W",
        "TEST.COPY_DETECTION.BETA",
        "TEST.COPY_DETECTION.PCAW_DIM",
        "TEST.COPY_DETECTION.BACKGROUND_SUBSET",
    ):
        check_range(cfg, key, low=0.0)
    check_choice(cfg, "MODEL.RDCD.TEACHER_BN", ("batch", "frozen"))
    check_choice(cfg, "MODEL.RDCD.LOSS.KD_MODE", sorted(RELATIONAL_KD_MODES))
    check_choice(cfg, "SOLVER.OPTIMIZER", sorted(OPTIMIZERS))
    check_choice(cfg, "INPUT.COPY_DETECTION.AUGMENTATION", sorted(AUGMENTATIONS))
    check_choice(cfg, "INPUT.COPY_DETECTION.TEST_RESIZE", sorted(TEST_RESIZE))
    check_choice(cfg, "TEST.COPY_DETECTION.CANDIDATES", ("global", "per_query"))
    check_choice(cfg, "MODEL.META_ARCHITECTURE", sorted(name for name, _ in META_ARCH_REGISTRY))
    for key in ("MODEL.RDCD.TEACHER", "MODEL.SSCD.NETWORK"):
        check_choice(cfg, key, sorted(name for name, _ in NETWORK_REGISTRY))
    check_choice(cfg, "MODEL.RDCD.STUDENT", sorted(name for name, _ in STUDENT_BACKBONE_REGISTRY))
