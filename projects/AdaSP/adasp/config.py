"""Config keys of the AdaSP project (added to a fastreid config before ``merge_from_file``)."""
from typing import Sequence

from fastreid.config import CfgNode as CN

from shared.engine import build_cfg


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
    """:func:`shared.engine.build_cfg` on FastReID's defaults with the AdaSP keys; returns a frozen config."""
    cfg = build_cfg(add_adasp_config, config_file, opts, framework="fastreid")
    cfg.freeze()
    return cfg
