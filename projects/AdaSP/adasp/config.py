"""Config keys of the AdaSP project (added to FastReID's defaults before the yaml is merged) and the checks
:func:`shared.engine.build_cfg` runs on them.

Build a config the one way every project does::

    from shared.engine import build_cfg
    cfg = build_cfg(add_adasp_config, "projects/AdaSP/configs/Market1501/mgn_R50-ibn_adasp.yml", opts,
                    framework="fastreid")
"""
import math

from fastreid.config import CfgNode as CN

from shared.engine.validation import ConfigValueError, check_positive, check_range, config_check

__all__ = ["add_adasp_config"]


def add_adasp_config(cfg: CN) -> CN:
    """Add ``MODEL.LOSSES.ADASP.*`` (the sparse pairwise loss), ``SEED`` and the test-loader knobs.

    Enable the loss with ``MODEL.LOSSES.NAME: ("AdaSPLoss",)`` (metric-only) or
    ``("CrossEntropyLoss", "AdaSPLoss")`` and ``MODEL.META_ARCHITECTURE: "AdaSPBaseline"`` / ``"AdaSPMGN"``.
    """
    _C = cfg
    _C.MODEL.LOSSES.ADASP = CN()
    # Multiplier of loss_adasp (official presets: 1.0 metric-only; 0.1 person / 0.5 vehicle together with CE).
    _C.MODEL.LOSSES.ADASP.SCALE = 1.0
    # Temperature tau of every soft min / max and of the softmax (official default 0.05, AdaSP repository
    # fastreid/config/defaults.py; the person presets set 0.04).
    _C.MODEL.LOSSES.ADASP.TEMP = 0.05
    # Positive similarity of each class: "adasp" (adaptive mix), "sp-h" (hardest), "sp-lh" (least hard).
    _C.MODEL.LOSSES.ADASP.TYPE = "adasp"
    # Build the identity classifier of the head (key and default of the official AdaSP fork); False (its
    # VeRi / VehicleID metric-only presets): no classifier, AdaSPBaseline with AdaSPLoss alone.
    _C.MODEL.HEADS.CLS_ENABLE = True
    # Compute every loss (CE, AdaSP, ...) over the global batch gathered from all processes, gradient to each
    # process's own rows (shared.engine.gather); False: per process, as FastReID's DDP and the official code
    # (which ran on 1 GPU, where both are the same). With N GPUs the per-process batch is IMS_PER_BATCH / N.
    _C.MODEL.LOSSES.GLOBAL_BATCH = False

    # Seed of Python, numpy and torch (+ the process rank); < 0 draws a fresh one. FastReID has no such key
    # and seeds nothing; detectron2's SEED has the same meaning.
    _C.SEED = -1
    # Workers of the test loader (fastreid hard-codes 4, too many on a 2-core machine).
    _C.TEST.NUM_WORKERS = 2
    # Seed of the random query/gallery split that fastreid draws when it loads a test set (VehicleID: one
    # image per id goes to the gallery); -1 keeps fastreid's unseeded behaviour (a new split each time).
    _C.TEST.SPLIT_SEED = -1
    # Gallery images per query in OUTPUT_DIR/inference/<dataset>/ranking.csv, written at every evaluation.
    _C.TEST.RANKING_TOPK = 10
    return cfg


@config_check(add_adasp_config)
def _check_adasp_loss(cfg: CN) -> None:
    """TEMP > 0, SCALE >= 0, TYPE one of the positive rules of :mod:`adasp.modeling.loss`; with the sparse
    pairwise loss, DATALOADER.NUM_INSTANCE >= 2 (with one image per identity a batch has no positive pair:
    the loss falls to ~1e-8 and nothing is learned)."""
    from adasp.modeling.loss import POSITIVE_RULES

    if "AdaSPLoss" in tuple(cfg.MODEL.LOSSES.NAME) and cfg.DATALOADER.NUM_INSTANCE < 2:
        raise ConfigValueError("DATALOADER.NUM_INSTANCE", cfg.DATALOADER.NUM_INSTANCE,
                               "must be >= 2 with AdaSPLoss: the sparse pairwise loss needs at least two "
                               "images of each identity in a batch")

    check_positive(cfg, "MODEL.LOSSES.ADASP.TEMP")
    check_range(cfg, "MODEL.LOSSES.ADASP.SCALE", low=0.0)
    loss_type = cfg.MODEL.LOSSES.ADASP.TYPE
    if not isinstance(loss_type, str) or loss_type.lower() not in POSITIVE_RULES:
        raise ConfigValueError("MODEL.LOSSES.ADASP.TYPE", loss_type,
                               f"must be one of {sorted(POSITIVE_RULES)}")


@config_check(add_adasp_config)
def _check_test(cfg: CN) -> None:
    """At least one ranked gallery image per query."""
    check_range(cfg, "TEST.RANKING_TOPK", low=1)


#: MGN's meta-architectures: their part branches cut the stride-16 feature map into 2 and 3 horizontal stripes
MGN_ARCHITECTURES = ("MGN", "AdaSPMGN")
#: the stride of MGN's part-branch feature maps (conv1, max-pool, res3, res4 halve; res5 keeps stride 1)
MGN_PART_STRIDE = 16


def mgn_stripes(height: int, parts: int) -> int:
    """Stripes ``torch.chunk(feature, parts, dim=2)`` yields for an input ``height``: the feature map is
    ``H = ceil(height / 16)`` rows and chunk cuts pieces of ``ceil(H / parts)`` rows, so
    ``ceil(H / ceil(H / parts))`` stripes (64 px: H = 4, two stripes of 2 where MGN needs three)."""
    rows = math.ceil(height / MGN_PART_STRIDE)
    return math.ceil(rows / math.ceil(rows / parts))


@config_check(add_adasp_config)
def _check_mgn_input_size(cfg: CN) -> None:
    """MGN needs its feature map to split into 2 and into 3 stripes (fastreid fails inside the model with
    "expected 3, got 2" otherwise): refuse such ``INPUT.SIZE_TRAIN`` / ``SIZE_TEST`` heights."""
    if cfg.MODEL.META_ARCHITECTURE not in MGN_ARCHITECTURES:
        return
    for key in ("INPUT.SIZE_TRAIN", "INPUT.SIZE_TEST"):
        size = tuple(cfg.INPUT.SIZE_TRAIN if key.endswith("TRAIN") else cfg.INPUT.SIZE_TEST)
        height = int(size[0])
        if mgn_stripes(height, 2) != 2 or mgn_stripes(height, 3) != 3:
            fits = [h for h in range(max(16, height - 64), height + 65, 16)
                    if mgn_stripes(h, 2) == 2 and mgn_stripes(h, 3) == 3]
            raise ConfigValueError(key, size, f"{cfg.MODEL.META_ARCHITECTURE} cuts the feature map of height "
                                   f"ceil({height} / {MGN_PART_STRIDE}) into 2 and 3 stripes, which this "
                                   f"height does not allow; heights that do nearby: {fits}")


@config_check(add_adasp_config)
def _check_classifier(cfg: CN) -> None:
    """Without a classifier only the sparse pairwise loss can train, and only AdaSPBaseline can drop it."""
    if cfg.MODEL.HEADS.CLS_ENABLE:
        return
    names = tuple(cfg.MODEL.LOSSES.NAME)
    if names != ("AdaSPLoss",):
        raise ConfigValueError("MODEL.HEADS.CLS_ENABLE", False,
                               f"needs MODEL.LOSSES.NAME=('AdaSPLoss',), got {names} (the other losses of "
                               "fastreid's Baseline read the classifier's logits)")
    if cfg.MODEL.META_ARCHITECTURE != "AdaSPBaseline":
        raise ConfigValueError("MODEL.HEADS.CLS_ENABLE", False,
                               f"is supported by AdaSPBaseline only, not {cfg.MODEL.META_ARCHITECTURE}")


@config_check(add_adasp_config)
def _check_schedule(cfg: CN) -> None:
    """The schedule lengths that do not depend on the data (the warm-up in epochs needs the training-set
    size and is checked when the trainer builds its scheduler, before the first iteration)."""
    check_range(cfg, "SOLVER.MAX_EPOCH", low=1)
    check_range(cfg, "SOLVER.WARMUP_ITERS", low=0)
    check_range(cfg, "SOLVER.DELAY_EPOCHS", low=0)
    solver = cfg.SOLVER
    # fastreid/solver/build.py: the cosine part lasts T_max = MAX_EPOCH - max(warm-up epochs, DELAY_EPOCHS)
    # epochs and divides by zero when T_max = 0; any warm-up lasts at least one epoch.
    min_warmup_epochs = 1 if solver.WARMUP_ITERS > 0 else 0
    shortest = max(min_warmup_epochs, solver.DELAY_EPOCHS)
    if solver.SCHED == "CosineAnnealingLR" and solver.MAX_EPOCH <= shortest:
        raise ConfigValueError("SOLVER.MAX_EPOCH", solver.MAX_EPOCH,
                               f"must exceed SOLVER.DELAY_EPOCHS={solver.DELAY_EPOCHS} and the warm-up "
                               f"(SOLVER.WARMUP_ITERS={solver.WARMUP_ITERS}: at least {min_warmup_epochs} "
                               "epoch) with SOLVER.SCHED CosineAnnealingLR (the cosine part would have no "
                               "epoch)")
