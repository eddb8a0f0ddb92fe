"""Config keys of the AdaSP project (added to a fastreid config before ``merge_from_file``)."""
import logging
from typing import Sequence

from fastreid.config import CfgNode as CN
from fastreid.config import get_cfg

from shared.engine import resolve_device


def add_adasp_config(cfg: CN) -> CN:
    """Add ``MODEL.LOSSES.ADASP.*`` (the sparse pairwise loss) and the CPU/demo knobs used by this project.

    Enable the loss with ``MODEL.LOSSES.NAME: ("AdaSPLoss",)`` (metric-only) or
    ``("CrossEntropyLoss", "AdaSPLoss")`` and ``MODEL.META_ARCHITECTURE: "AdaSPBaseline"`` / ``"AdaSPMGN"``.
    """
    _C = cfg
    _C.MODEL.LOSSES.ADASP = CN()
    # Multiplier of loss_adasp (1.0 metric-only; 0.1 person / 0.5 vehicle configs together with CE).
    _C.MODEL.LOSSES.ADASP.SCALE = 1.0
    # Temperature tau of every soft min / max and of the softmax (0.04 person, 0.05 vehicle configs).
    _C.MODEL.LOSSES.ADASP.TEMP = 0.04
    # Positive similarity of each class: "adasp" (adaptive mix), "sp-h" (hardest), "sp-lh" (least hard).
    _C.MODEL.LOSSES.ADASP.TYPE = "adasp"

    # Workers of the test loader (fastreid hard-codes 4, too many on a 2-core machine).
    _C.TEST.NUM_WORKERS = 2
    # Seed of the random query/gallery split that fastreid draws when it loads a test set (VehicleID: one image
    # per id goes to the gallery); -1 keeps fastreid's unseeded behaviour (a different split every evaluation).
    _C.TEST.SPLIT_SEED = -1
    return cfg


def build_adasp_cfg(config_file: str = "", opts: Sequence[str] = ()) -> CN:
    """fastreid's default config + :func:`add_adasp_config` + ``config_file`` + ``opts`` (``KEY VALUE``),
    made runnable on this machine: ``MODEL.DEVICE "auto"`` becomes cuda/cpu, and AMP (CUDA-only in
    fastreid's ``AMPTrainer``) is switched off on the CPU with a warning. Returns a frozen config."""
    cfg = get_cfg()
    add_adasp_config(cfg)
    if config_file:
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    cfg.MODEL.DEVICE = resolve_device(cfg.MODEL.DEVICE)
    if cfg.MODEL.DEVICE == "cpu" and cfg.SOLVER.AMP.ENABLED:
        logger = logging.getLogger(__name__)
        logger.warning("SOLVER.AMP.ENABLED ignored on the CPU (fastreid AMP is CUDA-only)")
        cfg.SOLVER.AMP.ENABLED = False
    cfg.freeze()
    return cfg
