"""Config keys of the long-tailed classification runs (``projects/IIF/train_cls.py``), added to detectron2's
default config (the solver, checkpoint and evaluation keys of :class:`shared.engine.GenericTrainer`)."""
from detectron2.config import CfgNode as CN

from shared.engine.checkpoint import add_checkpoint_config
from shared.engine.validation import check_choice, check_positive, check_range, config_check

__all__ = ["add_iif_cls_config"]


def add_iif_cls_config(cfg: CN) -> None:
    """Add the classification keys (each documented inline) to a detectron2 config, in place."""
    add_checkpoint_config(cfg)  # the shared keys the presets set: MODEL.FROM_SCRATCH (and WEIGHTS_REINIT)
    cfg.DATA = CN()
    # "synthetic" = generate shared/datasets/synthetic_longtail_cls.py under ROOT if missing;
    # "textlist" = an ImageNet-LT / Places-LT root with "<path> <label>" list files;
    # "cifar100_lt" = torchvision CIFAR-100 (cifar-100-python/ under ROOT, no download) subsampled to
    # IMBALANCE_FACTOR with the CIFAR-LT exponential profile.
    cfg.DATA.SOURCE = "synthetic"
    # CIFAR-LT imbalance factor n_min / n_max (CIFAR-100-LT: 0.01); only for SOURCE "cifar100_lt".
    cfg.DATA.IMBALANCE_FACTOR = 0.01
    # Dataset root; empty = $DETECTRON2_DATASETS/<synthetic_longtail | ImageNet_LT | cifar100>.
    cfg.DATA.ROOT = ""
    # List files relative to ROOT (ImageNet-LT: ImageNet_LT_train.txt / ImageNet_LT_test.txt).
    cfg.DATA.TRAIN_LIST = "SyntheticLT_train.txt"
    cfg.DATA.TEST_LIST = "SyntheticLT_test.txt"
    # Number of classes (ImageNet-LT 1000, Places-LT 365, CIFAR-100-LT 100).
    cfg.DATA.NUM_CLASSES = 10
    # many-shot: > MANY_SHOT training images; few-shot: < FEW_SHOT; medium in between (standard: 100 / 20).
    cfg.DATA.MANY_SHOT = 100
    cfg.DATA.FEW_SHOT = 20
    # Data-loader workers.
    cfg.DATA.NUM_WORKERS = 0

    cfg.INPUT.CLS = CN()
    # Training crop: "pad" (RandomCrop(SIZE, padding PAD), CIFAR) or "resized" (RandomResizedCrop(SIZE)).
    cfg.INPUT.CLS.TRAIN_CROP = "pad"
    # Crop size in pixels; PAD = zero padding of the "pad" crop.
    cfg.INPUT.CLS.SIZE = 32
    cfg.INPUT.CLS.PAD = 4
    # Test: Resize(TEST_RESIZE) + CenterCrop(SIZE) when TEST_RESIZE > 0, else the image as it is.
    cfg.INPUT.CLS.TEST_RESIZE = 0
    # Extra training augmentation after the crop and flip: "none", "autoaugment_cifar10",
    # "autoaugment_imagenet" (torchvision AutoAugment policies) or "randaugment" (torchvision RandAugment).
    cfg.INPUT.CLS.AUGMENT = "none"
    # Cutout (DeVries & Taylor 2017): one square hole of this side on the tensor; 0 = off.
    cfg.INPUT.CLS.CUTOUT = 0
    # ColorJitter brightness = contrast = saturation (hue 0); 0 = off.
    cfg.INPUT.CLS.COLOR_JITTER = 0.0
    # Per-channel normalisation of the [0, 1] tensor.
    cfg.INPUT.CLS.MEAN = [0.485, 0.456, 0.406]
    cfg.INPUT.CLS.STD = [0.229, 0.224, 0.225]

    cfg.MODEL.CLS = CN()
    # "se_resnet32" (CIFAR SE-ResNet-32) or a timm model name (built with pretrained=False).
    cfg.MODEL.CLS.BACKBONE = "resnet10t"
    # Classifier: "linear", "cosine" (cosine classifier, scale 16) or "lr_cosine" (learnable scale).
    cfg.MODEL.CLS.HEAD = "linear"
    # Optional local state dict to initialise the network from (e.g. ImageNet-pretrained weights for
    # Places-LT); entries whose shape differs are skipped. MODEL.WEIGHTS loads our own checkpoints.
    cfg.MODEL.CLS.PRETRAINED = ""
    # Trainable parameters: "all", "classifier" (decoupled stage) or "last_block" (the final residual
    # block + classifier, Places-LT fine-tuning). Frozen parameters get no gradient; BN statistics still
    # update in training mode, as in the official code.
    cfg.MODEL.CLS.TRAINABLE = "all"

    # Training length in epochs; SOLVER.MAX_ITER / STEPS / WARMUP_ITERS / CHECKPOINT_PERIOD are derived
    # from it and the training-set size (ceil(N / IMS_PER_BATCH) iterations per epoch).
    cfg.SOLVER.EPOCHS = 30
    # Epochs after which the lr is multiplied by SOLVER.GAMMA (WarmupMultiStepLR).
    cfg.SOLVER.MILESTONES = []
    # Mixup Beta(alpha, alpha) parameter; 0 = off.
    cfg.SOLVER.MIXUP_ALPHA = 0.0

    cfg.IIF = CN()
    # IIF variant of iif/weights.py (the official README uses "smooth").
    cfg.IIF.VARIANT = "smooth"
    # p-norm of the weights (official `--iif_norm`); 0 = off.
    cfg.IIF.NORM_P = 0.0
    # "posthoc": train with softmax CE, evaluate with and without IIF; "train_test": IIF-scaled CE in
    # training and IIF at test (the decoupled stage, official `--classif iif --decoup`).
    cfg.IIF.MODE = "posthoc"


@config_check(add_iif_cls_config)
def _check_cls_config(cfg: CN) -> None:
    check_choice(cfg, "DATA.SOURCE", ("synthetic", "textlist", "cifar100_lt"))
    check_range(cfg, "DATA.IMBALANCE_FACTOR", low=0.0, high=1.0, low_inclusive=False)
    check_positive(cfg, "DATA.NUM_CLASSES")
    check_choice(cfg, "INPUT.CLS.TRAIN_CROP", ("pad", "resized"))
    check_choice(cfg, "INPUT.CLS.AUGMENT",
                 ("none", "autoaugment_cifar10", "autoaugment_imagenet", "randaugment"))
    check_positive(cfg, "INPUT.CLS.SIZE")
    check_choice(cfg, "MODEL.CLS.HEAD", ("linear", "cosine", "lr_cosine"))
    check_choice(cfg, "MODEL.CLS.TRAINABLE", ("all", "classifier", "last_block"))
    check_positive(cfg, "SOLVER.EPOCHS")
    check_range(cfg, "SOLVER.MIXUP_ALPHA", low=0.0)
    check_range(cfg, "IIF.NORM_P", low=0.0)
    check_choice(cfg, "IIF.MODE", ("posthoc", "train_test"))
