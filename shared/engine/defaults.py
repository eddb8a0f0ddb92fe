"""The front door every project's ``train_net.py`` goes through.

Each project script has the same shape::

    import simd  # noqa: F401  (the compat layer first; registers the project's components)
    from simd.config import add_simd_config
    from simd.trainer import SimDTrainer

    from shared.engine import default_argument_parser, launch_from_args, setup, train_or_evaluate


    def main(args):
        cfg = setup(args, add_simd_config)
        return train_or_evaluate(SimDTrainer, cfg, args)


    if __name__ == "__main__":
        launch_from_args(main, default_argument_parser().parse_args())

* :func:`build_cfg` -- framework defaults + the project's config adder + ``--config-file`` + ``KEY VALUE``
  overrides; ``MODEL.DEVICE`` is resolved here and nowhere else.
* :func:`setup` -- :func:`build_cfg`, the framework's ``default_setup`` (output folder, config dump,
  environment log, seed), the project's logger, an optional project ``prepare`` step; returns a frozen cfg.
* :func:`train_or_evaluate` -- ``--eval-only`` (load weights, test, check expected results) or training
  (``--resume`` continues from ``OUTPUT_DIR/last_checkpoint``), for detectron2, FastReID and
  :class:`~shared.engine.trainer.GenericTrainer` trainers alike.
"""
from __future__ import annotations

import argparse
import logging
from datetime import timedelta
from typing import Any, Callable, Dict, Optional, Sequence, Union

from detectron2.engine import default_argument_parser as _d2_argument_parser
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from shared.engine import run_checks  # noqa: F401  (registers the checks of the framework keys)
from shared.engine.checkpoint import add_checkpoint_config
from shared.engine.device import resolve_device
from shared.engine.launch import DEFAULT_TIMEOUT, launch
from shared.engine.validation import run_config_checks
from shared.output_lock import acquire_output_dir, release_output_dir
from shared.registry import get_or_raise

__all__ = ["build_cfg", "default_argument_parser", "launch_from_args", "setup", "train_or_evaluate"]

ConfigAdder = Callable[[Any], Any]


def _detectron2_framework():
    from detectron2.config import get_cfg
    from detectron2.engine import default_setup

    return get_cfg, default_setup


def _fastreid_framework():
    from fastreid.config import get_cfg
    from fastreid.engine import default_setup

    return get_cfg, default_setup


#: framework name -> () -> (default-config factory, default_setup); imported on use (fastreid is heavy)
FRAMEWORKS: Dict[str, Callable[[], tuple]] = {
    "detectron2": _detectron2_framework,
    "fastreid": _fastreid_framework,
}


def default_argument_parser(epilog: Optional[str] = None) -> argparse.ArgumentParser:
    """detectron2's parser: ``--config-file --resume --eval-only --num-gpus --num-machines --machine-rank
    --dist-url`` and trailing ``KEY VALUE`` overrides (FastReID's parser has the same arguments), plus
    ``--dist-timeout SECONDS``: how long a collective waits for the other processes before the run stops
    with an error naming the rank that stopped answering (:mod:`shared.engine.launch`)."""
    parser = _d2_argument_parser(epilog)
    parser.add_argument("--dist-timeout", type=float, default=DEFAULT_TIMEOUT.total_seconds(),
                        metavar="SECONDS",
                        help="collective timeout of a multi-process run, in seconds (default: %(default)g); "
                             "raise it when rank 0 alone runs long steps (e.g. a large LVIS evaluation)")
    return parser


def build_cfg(add_project_config: Union[ConfigAdder, Sequence[ConfigAdder]], config_file: str = "",
              opts: Sequence[str] = (), *, framework: str = "detectron2"):
    """``framework`` defaults + ``add_project_config`` + ``config_file`` + ``opts``; returns an unfrozen cfg.

    ``MODEL.DEVICE`` defaults to ``"auto"``, which becomes ``cuda`` or ``cpu`` (a CUDA device asked for on a
    machine without one is an error that says so). FastReID's AMP is CUDA-only, so on the CPU it is switched
    off with a warning.
    The checks registered for the framework (:mod:`shared.engine.run_checks`: batch sizes, schedule length,
    checkpoint period, input sizes) and for the adders (:mod:`shared.engine.validation`) run last, so a value
    out of its range is an error naming its key before any data or model is loaded.
    """
    get_cfg, _ = get_or_raise(FRAMEWORKS, framework, "framework")()
    cfg = get_cfg()
    add_checkpoint_config(cfg)  # MODEL.WEIGHTS_REINIT, read by every checkpointer
    # detectron2 and FastReID default to "cuda"; here the default is "auto" (CUDA when present, else the CPU),
    # so a config that does not choose runs anywhere while an explicit "cuda" still demands a GPU
    cfg.MODEL.DEVICE = "auto"
    adders = add_project_config if isinstance(add_project_config, (list, tuple)) else [add_project_config]
    for add in adders:
        add(cfg)
    if config_file:
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    cfg.MODEL.DEVICE = resolve_device(cfg.MODEL.DEVICE)
    if framework == "fastreid" and cfg.MODEL.DEVICE == "cpu" and cfg.SOLVER.AMP.ENABLED:
        logging.getLogger(__name__).warning(
            "SOLVER.AMP.ENABLED ignored on the CPU (FastReID's AMP is CUDA-only)")
        cfg.SOLVER.AMP.ENABLED = False
    run_config_checks(cfg, [framework, *adders])
    return cfg


def setup(args: argparse.Namespace, add_project_config: Union[ConfigAdder, Sequence[ConfigAdder]], *,
          framework: str = "detectron2", prepare: Optional[Callable[[Any], Any]] = None):
    """What every ``train_net.py`` does before training: returns the frozen, prepared cfg.

    1. :func:`build_cfg` from ``args.config_file`` and ``args.opts``;
    2. the main process takes ``OUTPUT_DIR/run.lock`` (:mod:`shared.output_lock`: one run per
       output folder, training or ``--eval-only``; released by :func:`train_or_evaluate`);
    3. the framework's ``default_setup`` (OUTPUT_DIR, ``config.yaml`` dump, environment log, ``SEED``);
    4. loggers for the project package (named after the module of the first config adder) and for
       ``shared`` writing to ``OUTPUT_DIR/log.txt``;
    5. ``prepare(cfg)`` on an unfrozen copy, for project steps that need the logger and the output folder
       (dataset registration, estimates cached in OUTPUT_DIR); it returns the cfg to use.
    """
    cfg = build_cfg(add_project_config, args.config_file, args.opts, framework=framework)
    cfg.freeze()
    lock = None
    if comm.is_main_process() and cfg.OUTPUT_DIR:
        lock = acquire_output_dir(cfg.OUTPUT_DIR, "evaluation" if getattr(args, "eval_only", False)
                                  else "training", log=False)
    _, default_setup = FRAMEWORKS[framework]()
    default_setup(cfg, args)
    first = add_project_config[0] if isinstance(add_project_config, (list, tuple)) else add_project_config
    project = first.__module__.split(".")[0]
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name=project)
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="shared", abbrev_name="shared")
    logging.getLogger("shared").propagate = True  # setup_logger cuts it off; handlers above still see it
    if lock is not None and lock.stale:
        logging.getLogger(__name__).warning(lock.stale_message())
        lock.stale = None
    if prepare is not None:
        cfg = cfg.clone()
        cfg.defrost()
        cfg = prepare(cfg)
        cfg.freeze()
    return cfg


def train_or_evaluate(trainer_cls: Any, cfg, args: argparse.Namespace) -> Optional[Dict[str, Any]]:
    """``--eval-only``: build the model, load ``MODEL.WEIGHTS`` (or the last checkpoint with ``--resume``)
    through the trainer's checkpointer, return ``trainer_cls.test`` and check ``TEST.EXPECTED_RESULTS``
    where the config has them. Otherwise train, resuming when ``--resume`` and a checkpoint exists.

    ``trainer_cls`` is a detectron2 or FastReID ``DefaultTrainer`` or a ``GenericTrainer`` that mixes in
    :class:`~shared.engine.checkpoint.AtomicCheckpointing` (which provides ``build_checkpointer``).
    """
    try:
        return _train_or_evaluate(trainer_cls, cfg, args)
    finally:
        if comm.is_main_process() and cfg.OUTPUT_DIR:
            release_output_dir(cfg.OUTPUT_DIR)


def _train_or_evaluate(trainer_cls: Any, cfg, args: argparse.Namespace) -> Optional[Dict[str, Any]]:
    if args.eval_only:
        model = trainer_cls.build_model(cfg)
        checkpointer = trainer_cls.build_checkpointer(model, cfg)
        if not cfg.MODEL.WEIGHTS and not (args.resume and checkpointer.has_checkpoint()):
            raise ValueError("--eval-only needs weights: set MODEL.WEIGHTS (or pass --resume with a "
                             f"checkpoint in OUTPUT_DIR={cfg.OUTPUT_DIR!r}); evaluating a randomly "
                             "initialised model is refused")
        checkpointer.resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        results = trainer_cls.test(cfg, model)
        if comm.is_main_process() and hasattr(cfg.TEST, "EXPECTED_RESULTS"):
            from detectron2.evaluation import verify_results

            verify_results(cfg, results)
        return results
    trainer = trainer_cls(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def launch_from_args(main: Callable[[argparse.Namespace], Any], args: argparse.Namespace) -> None:
    """Start ``main(args)`` in ``--num-gpus`` processes per machine (``--num-machines``, ``--machine-rank``,
    ``--dist-url``, ``--dist-timeout``), as detectron2's ``launch`` -- on a machine without CUDA as gloo
    processes on the CPU (:func:`shared.engine.launch.launch`)."""
    print("Command Line Args:", args)
    timeout = timedelta(seconds=getattr(args, "dist_timeout", DEFAULT_TIMEOUT.total_seconds()))
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,), timeout=timeout)
