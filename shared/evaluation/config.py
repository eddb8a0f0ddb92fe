"""The ``TEST.EVAL_BACKEND`` config key, shared by every detection project (SimD, IIF)."""
from __future__ import annotations

from typing import Any

from shared.engine.validation import check_choice, config_check
from shared.evaluation.backend import BACKENDS, DEFAULT_BACKEND

__all__ = ["add_evaluation_config"]


def add_evaluation_config(cfg: Any) -> None:
    """Add ``TEST.EVAL_BACKEND`` to a detectron2 config, in place (idempotent: an existing value is kept)."""
    if "EVAL_BACKEND" in cfg.TEST:
        return
    # implementation of COCO / AI-TOD / SODA-D / LVIS evaluation: "faster_coco_eval" (C++, same numbers as the
    # reference tools, tested) or "pycocotools" / "lvis" (the reference tool of the protocol: pycocotools'
    # COCOeval for COCO-style protocols, lvis-api's LVISEval for LVIS; the two names select the same thing)
    cfg.TEST.EVAL_BACKEND = DEFAULT_BACKEND


@config_check(add_evaluation_config)
def check_eval_backend(cfg: Any) -> None:
    """``TEST.EVAL_BACKEND`` is a known backend. A project whose adder calls :func:`add_evaluation_config`
    registers this check for its own adder too (``config_check(add_x_config)(check_eval_backend)``):
    checks run for the adders given to ``build_cfg``."""
    check_choice(cfg, "TEST.EVAL_BACKEND", BACKENDS)
