"""Configuration keys of the DAS project (detectron2 ``CfgNode``).

Use::

    from detectron2.config import get_cfg
    from das.config import add_das_config

    cfg = get_cfg()
    add_das_config(cfg)
    cfg.merge_from_file("projects/DAS/configs/CUB200/triplet_distance_das.yaml")

The base default is the CUB200/CARS196 preset of the official scripts (DFS range [0.99, 1.01), MTS β 0.01,
detach on, K = 4, three produced copies); per-dataset and per-loss presets live in ``projects/DAS/configs``.
"""
from detectron2.config import CfgNode as CN


def add_das_config(cfg: CN) -> CN:
    """Add every key the DAS project reads to ``cfg`` (in place) and return it."""
    cfg.MODEL.META_ARCHITECTURE = "DASEmbeddingModel"
    # "auto" = CUDA when available, else CPU (resolved by shared.engine.resolve_device).
    cfg.MODEL.DEVICE = "auto"
    # Per-channel mean / std applied to images scaled to [0, 1] (ImageNet statistics). For BN-Inception-style
    # weights trained on 0-255 inputs use MODEL.INPUT_SCALE 255 and the matching mean/std.
    cfg.MODEL.PIXEL_MEAN = [0.485, 0.456, 0.406]
    cfg.MODEL.PIXEL_STD = [0.229, 0.224, 0.225]
    # Images are read as uint8 and divided by 255, then multiplied by this factor before normalisation.
    cfg.MODEL.INPUT_SCALE = 1.0

    # ---------------------------------------------------------------- backbone + embedding head
    cfg.MODEL.EMBEDDING = CN()
    # Any timm model name (resnet50, resnet18, inception_v3, ...); built with pretrained=False.
    cfg.MODEL.EMBEDDING.BACKBONE = "resnet50"
    # Optional local file with ImageNet weights for the timm backbone (no downloads happen here).
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
    # One of das.losses.LOSS_REGISTRY: triplet, contrastive, margin, multi_similarity, lifted, npair.
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
    # One of das.losses.MINER_REGISTRY: none, semihard, distance_weighted, multi_similarity.
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
    # Datasets are read under $DETECTRON2_DATASETS (see das.datasets). Gallery sets for query→gallery evaluation
    # (In-Shop: TEST = ("inshop_query",), TEST_GALLERY = ("inshop_gallery",)); empty = each TEST set is its own
    # query and gallery (CUB, CARS, SOP protocol).
    cfg.DATASETS.TEST_GALLERY = ()
    cfg.DATALOADER.SAMPLER_TRAIN = "ClassBalancedSampler"
    # P×K sampling: each batch holds SOLVER.IMS_PER_BATCH / SAMPLES_PER_CLASS classes with K images each.
    cfg.DATALOADER.SAMPLES_PER_CLASS = 2
    # Training augmentation: RandomResizedCrop to INPUT.TRAIN_SIZE + horizontal flip.
    cfg.INPUT.TRAIN_SIZE = 224
    # Test transform: resize the short side to INPUT.TEST_RESIZE, centre-crop INPUT.TEST_SIZE.
    cfg.INPUT.TEST_RESIZE = 256
    cfg.INPUT.TEST_SIZE = 224
    # Scale range of RandomResizedCrop.
    cfg.INPUT.CROP_SCALE = (0.08, 1.0)

    # ---------------------------------------------------------------- solver (Revisiting-DML defaults)
    # Optimiser name: "Adam" (as the paper) or "SGD".
    cfg.SOLVER.OPTIMIZER = "Adam"
    cfg.SOLVER.BASE_LR = 1e-5
    cfg.SOLVER.WEIGHT_DECAY = 4e-4
    cfg.SOLVER.IMS_PER_BATCH = 112
    # Schedule in iterations; configs state the epoch equivalent (300 epochs, steps at 200 / 250, γ 0.3).
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupMultiStepLR"
    cfg.SOLVER.WARMUP_ITERS = 0
    cfg.SOLVER.GAMMA = 0.3

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
    return cfg
