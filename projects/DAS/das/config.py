"""Configuration keys of the DAS project (detectron2 ``CfgNode``).

Use::

    from das.config import add_das_config
    from shared.engine import build_cfg

    cfg = build_cfg(add_das_config, "projects/DAS/configs/CUB200/triplet_distance.yaml", ["SEED", "0"])

:func:`add_das_config` only ADDS keys. The detectron2 defaults that DAS runs change (meta-architecture,
device, pixel statistics, solver, sampler) are set in ``configs/Base-DAS.yaml``. The adder's values are the
CUB200/CARS196 preset of the official scripts (DFS range [0.99, 1.01), MTS beta 0.01, detach on, K = 4, three
produced copies); per-dataset and per-loss presets live in ``projects/DAS/configs``. Every value is checked
when the config is built (:func:`_check_das_config`), before any data or model is loaded.
"""
from detectron2.config import CfgNode as CN

from shared.engine.validation import ConfigValueError, check_choice, check_positive, check_range, config_check


def add_das_config(cfg: CN) -> CN:
    """Add every key the DAS project reads to ``cfg`` (in place) and return it."""
    # Images are read as uint8 and divided by 255, then multiplied by this factor before the normalisation
    # with MODEL.PIXEL_MEAN / PIXEL_STD (set in Base-DAS.yaml, in the channel order of INPUT.FORMAT).
    cfg.MODEL.INPUT_SCALE = 1.0

    # ---------------------------------------------------------------- backbone + embedding head
    cfg.MODEL.EMBEDDING = CN()
    # "bninception" (das.modeling.bninception, the BN-Inception of Table 1) or any timm model name (resnet50,
    # resnet18, inception_v3, ...), built without downloading weights.
    cfg.MODEL.EMBEDDING.BACKBONE = "resnet50"
    # Optional local file with ImageNet weights for the backbone (timm's file for timm names; the
    # pretrainedmodels bn_inception-*.pth file for "bninception"). Nothing is downloaded here.
    cfg.MODEL.EMBEDDING.BACKBONE_WEIGHTS = ""
    # Keep every BatchNorm of the backbone in eval mode (running statistics frozen; affine parameters still
    # trained), as the "frozen" architectures of the Revisiting-DML codebase.
    cfg.MODEL.EMBEDDING.FREEZE_BN = True
    # Global pooling: "avg" (GAP) or "avg+max" (GAP + GMP summed, the "double" pooling of Table 1).
    cfg.MODEL.EMBEDDING.POOLING = "avg"
    # Output embedding dimension D (128 in Table 2, 512 in Table 1).
    cfg.MODEL.EMBEDDING.DIM = 128
    # L2-normalise the embeddings; set False for lifted and N-pair losses (they use an L2 regulariser).
    cfg.MODEL.EMBEDDING.NORMALIZE = True

    # ---------------------------------------------------------------- metric loss and miner
    cfg.MODEL.LOSS = CN()
    # One of das.modeling.losses.LOSS_REGISTRY: triplet, contrastive, margin, multi_similarity, lifted, npair.
    cfg.MODEL.LOSS.NAME = "triplet"
    # Triplet / margin-loss margin.
    cfg.MODEL.LOSS.MARGIN = 0.2
    # Contrastive loss: positive and negative margins on the L2 distance.
    cfg.MODEL.LOSS.POS_MARGIN = 0.0
    cfg.MODEL.LOSS.NEG_MARGIN = 1.0
    # Margin loss: initial β, whether β is learned, its learning rate, and ν.
    cfg.MODEL.LOSS.MARGIN_BETA = 1.2
    cfg.MODEL.LOSS.LEARN_BETA = True
    cfg.MODEL.LOSS.BETA_LR = 5e-4
    cfg.MODEL.LOSS.MARGIN_NU = 0.0
    # Multi-similarity loss: α, β and the base λ.
    cfg.MODEL.LOSS.MS_ALPHA = 2.0
    cfg.MODEL.LOSS.MS_BETA = 40.0
    cfg.MODEL.LOSS.MS_BASE = 0.5
    # Weight of the L2 embedding regulariser (lifted and N-pair).
    cfg.MODEL.LOSS.L2_REG_WEIGHT = 0.005
    cfg.MODEL.MINER = CN()
    # One of das.modeling.losses.MINER_REGISTRY: none, semihard, distance_weighted, multi_similarity.
    cfg.MODEL.MINER.NAME = "distance_weighted"
    # Semihard miner margin.
    cfg.MODEL.MINER.MARGIN = 0.2
    # Distance-weighted miner: distance cut-off and non-zero-loss cut-off.
    cfg.MODEL.MINER.CUTOFF = 0.5
    cfg.MODEL.MINER.NONZERO_LOSS_CUTOFF = 1.4
    # Multi-similarity miner margin ε.
    cfg.MODEL.MINER.MS_EPSILON = 0.1

    # ---------------------------------------------------------------- DAS (embedding producer)
    cfg.MODEL.DAS = CN()
    # Enlarge every training batch with DAS-generated embeddings.
    cfg.MODEL.DAS.ENABLED = True
    # Number of training classes C (rows of the frequency matrix and of the banks); 0 = taken from the
    # training set when the model is built by the trainer.
    cfg.MODEL.DAS.NUM_CLASSES = 0
    # Generated copies per real embedding (R); the loss sees (R + 1) * B embeddings.
    cfg.MODEL.DAS.NUM_PRODUCE = 3
    # Generate from a detached copy of the embeddings (gradient then reaches real embeddings only through
    # the pairs they form with generated points).
    cfg.MODEL.DAS.DETACH = True
    # L2-normalise generated embeddings (False for lifted and N-pair, whose embeddings are not normalised).
    cfg.MODEL.DAS.NORMALIZE = True
    # Weight of the extra loss on generated + real embeddings; 0 = single loss on the enlarged batch,
    # w > 0 = L(real) + w * L(real + generated) (SOP triplet runs use 1.0).
    cfg.MODEL.DAS.AUX_LOSS_WEIGHT = 0.0
    cfg.MODEL.DAS.DFS = CN()
    # Discriminative Feature Scaling on/off (ablation).
    cfg.MODEL.DAS.DFS.ENABLED = True
    # K: dimensions recorded per embedding and scaled per generated embedding.
    cfg.MODEL.DAS.DFS.NUM_SCALE = 4
    # Scale factors are drawn from U[low, high) per sample and dimension.
    cfg.MODEL.DAS.DFS.RANGE = (0.99, 1.01)
    cfg.MODEL.DAS.MTS = CN()
    # Memorized Transformation Shifting on/off (ablation).
    cfg.MODEL.DAS.MTS.ENABLED = True
    # FIFO capacity of each class bank of intra-class differences.
    cfg.MODEL.DAS.MTS.BANK_SIZE = 10
    # β: weight of the memorised difference added to a generated embedding.
    cfg.MODEL.DAS.MTS.SCALE = 0.01

    # ---------------------------------------------------------------- data
    # Datasets are read under $DETECTRON2_DATASETS (see das.datasets). Gallery sets for query→gallery
    # evaluation (In-Shop: TEST = ("inshop_query",), TEST_GALLERY = ("inshop_gallery",)); empty = each TEST
    # set is its own query and gallery (CUB, CARS, SOP protocol).
    cfg.DATASETS.TEST_GALLERY = ()
    # P×K sampling: each global batch of SOLVER.IMS_PER_BATCH images (split evenly across the processes under
    # DDP, as detectron2) holds IMS_PER_BATCH / SAMPLES_PER_CLASS classes with K images each.
    cfg.DATALOADER.SAMPLES_PER_CLASS = 2
    # The synthetic CUB-layout set (datasets "synthetic_birds_{train,test}" under
    # $DETECTRON2_DATASETS/synthetic_birds), written by train_net.py / demo.py when a config names it.
    cfg.DATASETS.SYNTHETIC_FINE_GRAINED = CN()
    # classes (first half train, second half test), images per class, image side in pixels, generator seed
    cfg.DATASETS.SYNTHETIC_FINE_GRAINED.NUM_CLASSES = 40
    cfg.DATASETS.SYNTHETIC_FINE_GRAINED.IMAGES_PER_CLASS = 20
    cfg.DATASETS.SYNTHETIC_FINE_GRAINED.IMAGE_SIZE = 64
    cfg.DATASETS.SYNTHETIC_FINE_GRAINED.SEED = 0
    # Training augmentation: RandomResizedCrop to INPUT.TRAIN_SIZE + horizontal flip.
    cfg.INPUT.TRAIN_SIZE = 224
    # Test transform: resize the short side to INPUT.TEST_RESIZE, centre-crop INPUT.TEST_SIZE.
    cfg.INPUT.TEST_RESIZE = 256
    cfg.INPUT.TEST_SIZE = 224
    # Scale range of RandomResizedCrop.
    cfg.INPUT.CROP_SCALE = (0.08, 1.0)

    # ---------------------------------------------------------------- solver
    # Optimiser name: "Adam" (as the official scripts, Base-DAS.yaml) or "SGD" (momentum SOLVER.MOMENTUM).
    cfg.SOLVER.OPTIMIZER = "Adam"

    # ---------------------------------------------------------------- evaluation
    cfg.TEST.RETRIEVAL = CN()
    # Recall@K values reported (1, 2, 4, 8 for CUB / CARS; 1, 10, 100, 1000 for SOP; 1, 10, ..., 50 In-Shop).
    cfg.TEST.RETRIEVAL.RECALL_KS = (1, 2, 4, 8)
    # Number of k-means clusters for NMI / F1: 0 = number of test classes; the official code uses the
    # number of TRAINING classes (set it here to reproduce that).
    cfg.TEST.RETRIEVAL.NUM_CLUSTERS = 0
    # Seed of the faiss k-means used for NMI / F1.
    cfg.TEST.RETRIEVAL.KMEANS_SEED = 0
    # Save a top-k retrieval grid PNG at each evaluation (number of query rows; 0 = off).
    cfg.TEST.RETRIEVAL.VIS_QUERIES = 0
    cfg.TEST.RETRIEVAL.VIS_TOPK = 5
    # Nearest images per query in OUTPUT_DIR/inference/<test set>/ranking.csv, written at each evaluation.
    cfg.TEST.RETRIEVAL.RANKING_TOPK = 10
    return cfg


#: DATALOADER.SAMPLER_TRAIN values this project implements
TRAIN_SAMPLERS = ("ClassBalancedSampler",)


@config_check(add_das_config)
def _check_das_config(cfg: CN) -> None:
    """Every DAS value in its valid range, each error naming the key (run by ``shared.engine.build_cfg``)."""
    check_choice(cfg, "DATALOADER.SAMPLER_TRAIN", TRAIN_SAMPLERS)
    check_choice(cfg, "INPUT.FORMAT", ("RGB", "BGR"))
    for key in (
        "MODEL.EMBEDDING.DIM",
        "MODEL.DAS.NUM_PRODUCE",
        "MODEL.DAS.DFS.NUM_SCALE",
        "MODEL.DAS.MTS.BANK_SIZE",
        "DATALOADER.SAMPLES_PER_CLASS",
        "SOLVER.IMS_PER_BATCH",
        "MODEL.INPUT_SCALE",
        "TEST.RETRIEVAL.RANKING_TOPK",
    ):
        check_positive(cfg, key)
    check_range(cfg, "MODEL.DAS.NUM_CLASSES", low=0)
    check_range(cfg, "MODEL.DAS.AUX_LOSS_WEIGHT", low=0.0)
    check_range(cfg, "MODEL.DAS.MTS.SCALE", low=0.0)
    if cfg.MODEL.DAS.DFS.NUM_SCALE > cfg.MODEL.EMBEDDING.DIM:
        raise ConfigValueError("MODEL.DAS.DFS.NUM_SCALE", cfg.MODEL.DAS.DFS.NUM_SCALE,
                               f"cannot exceed MODEL.EMBEDDING.DIM={cfg.MODEL.EMBEDDING.DIM}")
    value_range = tuple(cfg.MODEL.DAS.DFS.RANGE)
    if len(value_range) != 2 or not 0.0 < float(value_range[0]) <= float(value_range[1]):
        raise ConfigValueError("MODEL.DAS.DFS.RANGE", value_range, "needs (low, high) with 0 < low <= high")
    if cfg.SOLVER.IMS_PER_BATCH % cfg.DATALOADER.SAMPLES_PER_CLASS:
        raise ConfigValueError(
            "SOLVER.IMS_PER_BATCH",
            cfg.SOLVER.IMS_PER_BATCH,
            f"must be a multiple of DATALOADER.SAMPLES_PER_CLASS={cfg.DATALOADER.SAMPLES_PER_CLASS}",
        )
    if any(int(k) < 1 for k in cfg.TEST.RETRIEVAL.RECALL_KS) or not cfg.TEST.RETRIEVAL.RECALL_KS:
        raise ConfigValueError("TEST.RETRIEVAL.RECALL_KS", tuple(cfg.TEST.RETRIEVAL.RECALL_KS),
                               "needs at least one K >= 1")
    galleries = tuple(cfg.DATASETS.TEST_GALLERY)
    if galleries and len(galleries) != len(cfg.DATASETS.TEST):
        raise ConfigValueError(
            "DATASETS.TEST_GALLERY",
            galleries,
            f"must list one gallery per DATASETS.TEST entry {tuple(cfg.DATASETS.TEST)} (or be empty)",
        )
