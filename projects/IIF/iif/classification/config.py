"""Config of the long-tailed classification entry point (``projects/IIF/train_cls.py``), yacs like detectron2."""
from yacs.config import CfgNode as CN


def get_cls_cfg() -> CN:
    """Default config; every key is documented inline. yaml files in configs/classification override it."""
    cfg = CN()
    cfg.DATA = CN()
    # "synthetic" = generate shared/datasets/synthetic_longtail_cls.py under ROOT if missing;
    # "textlist" = an existing ImageNet-LT / Places-LT style root with "<path> <label>" list files;
    # "cifar100_lt" = torchvision CIFAR-100 (cifar-100-python/ under ROOT, no download) subsampled to
    # IMBALANCE_FACTOR with the CIFAR-LT exponential profile.
    cfg.DATA.SOURCE = "synthetic"
    # CIFAR-LT imbalance factor n_min / n_max (CIFAR-100-LT: 0.01); only for SOURCE "cifar100_lt".
    cfg.DATA.IMBALANCE_FACTOR = 0.01
    # Dataset root; empty = $DETECTRON2_DATASETS/synthetic_longtail for the synthetic set.
    cfg.DATA.ROOT = ""
    # List files relative to ROOT (ImageNet-LT: ImageNet_LT_train.txt / ImageNet_LT_val.txt / ImageNet_LT_test.txt).
    cfg.DATA.TRAIN_LIST = "SyntheticLT_train.txt"
    cfg.DATA.TEST_LIST = "SyntheticLT_test.txt"
    # Number of classes (ImageNet-LT 1000, Places-LT 365, CIFAR-100-LT 100).
    cfg.DATA.NUM_CLASSES = 10
    # Input resolution (images are resized to INPUT_SIZE x INPUT_SIZE).
    cfg.DATA.INPUT_SIZE = 32
    # Per-channel normalisation.
    cfg.DATA.MEAN = [0.485, 0.456, 0.406]
    cfg.DATA.STD = [0.229, 0.224, 0.225]
    # Data-loader workers.
    cfg.DATA.NUM_WORKERS = 0
    # many-shot: > MANY_SHOT training images; few-shot: < FEW_SHOT; medium in between
    # (the standard ImageNet-LT split uses 100 / 20).
    cfg.DATA.MANY_SHOT = 100
    cfg.DATA.FEW_SHOT = 20

    cfg.MODEL = CN()
    # timm model name, always built with pretrained=False (nothing can be downloaded here); give a
    # local state dict in WEIGHTS for pretrained backbones.
    cfg.MODEL.BACKBONE = "resnet10t"
    # Optional local checkpoint to start from ("" = random init).
    cfg.MODEL.WEIGHTS = ""
    # "cpu" | "cuda" | "auto".
    cfg.MODEL.DEVICE = "auto"

    cfg.SOLVER = CN()
    # Stage 1 (representation + classifier, plain softmax CE).
    cfg.SOLVER.EPOCHS = 30
    cfg.SOLVER.BATCH_SIZE = 64
    cfg.SOLVER.BASE_LR = 0.1
    cfg.SOLVER.MOMENTUM = 0.9
    cfg.SOLVER.WEIGHT_DECAY = 5e-4
    # Cosine learning-rate schedule over EPOCHS.
    cfg.SOLVER.COSINE = True

    cfg.IIF = CN()
    # Variant of iif/weights.py used for classification (the official README uses "smooth").
    cfg.IIF.VARIANT = "smooth"
    # p-norm of the weights (official `iif_norm`); 0 = off.
    cfg.IIF.NORM_P = 0.0
    # Decoupled stage 2: freeze everything except a Xavier re-initialised classifier, train it with IIF-CE.
    cfg.IIF.DECOUPLED_EPOCHS = 5
    # Learning rate of the decoupled stage (ImageNet-LT 2e-5, CIFAR-100-LT 1e-4 in the official code).
    cfg.IIF.DECOUPLED_LR = 1e-3

    # Output directory: checkpoints (stage1.pth), metrics.json, TensorBoard events, results.json.
    cfg.OUTPUT_DIR = "output/iif_cls"
    cfg.SEED = 0
    return cfg
