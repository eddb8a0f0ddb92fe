"""From a training run's folder to a ready model: :func:`load_run`.

A run folder (``OUTPUT_DIR``) written by any project's trainer holds

* ``config.yaml`` -- the resolved config (detectron2's / FastReID's ``default_setup`` dump; SimD rewrites it
  with the m, n it resolved);
* ``last_checkpoint`` (the name of the newest checkpoint), ``model_final.pth``, ``model_<iter>.pth`` and
  their ``.sha256`` digests (:mod:`shared.engine.checkpoint`);
* ``run.json`` -- written by :func:`write_run_info` when the trainer is built, the one file that says what the
  run is::

      {"format": 1,
       "project": "simd",                 # the name its loader is registered under
       "loader_module": "simd.predictor", # imported by load_run, which registers the loader
       "framework": "detectron2",         # or "fastreid", "generic"
       "config": "config.yaml",           # relative to the run folder
       "metadata": {...}}                 # what a fresh process cannot know: class names, dataset ids, ...

The contract for a project:

1. its trainer calls :func:`write_run_info` once, on construction (main process only; later calls overwrite
   it), with the metadata its loader needs -- for detectors :func:`detection_metadata` gives the class names
   and the dataset's category ids;
2. the module named by ``loader_module`` (by convention ``<package>/predictor.py``) registers a loader::

       @register_run_loader("simd")
       def load_simd_run(run: RunInfo, checkpoint: str, device: str, **options) -> SimDPredictor: ...

   ``run`` is the parsed ``run.json`` (:class:`RunInfo`), ``checkpoint`` the resolved weights file (an
   existing path), ``device`` a resolved device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``); ``options``
   are the keyword arguments given to :func:`load_run` beyond its own. The loader builds the config from
   ``run.config_file`` with the project's config adder (:func:`run_config`), builds the model, loads the
   weights strictly and returns the project's predictor / feature extractor.

Why a config adder: ``config.yaml`` holds our keys (``MODEL.WEIGHTS_REINIT``,
``DATASETS.DROP_INVALID_BOXES``, ``MODEL.SIMD.*`` ...), which a plain ``get_cfg().merge_from_file`` refuses
as unknown. The route is ``shared.engine.build_cfg(add_<project>_config, "<run>/config.yaml",
["MODEL.WEIGHTS", "<run>/model_final.pth"])`` (what :func:`run_config` does), or simply :func:`load_run`.

Detectors (SimD, IIF) return a :class:`DetectionRunPredictor`: detectron2's ``DefaultPredictor`` (same resize,
same input format, same ``__call__``) whose weights were loaded through the verified checkpointer, plus the
run's class names and category ids, COCO-style result records and drawn pictures.
"""
from __future__ import annotations

import datetime
import importlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from detectron2.engine import DefaultPredictor

from shared.engine.checkpoint import atomic_write_bytes
from shared.engine.device import resolve_device
from shared.registry import get_or_raise, register_as

__all__ = ["RUN_FILE", "RUN_LOADERS", "DetectionRunPredictor", "RunInfo", "detection_metadata", "load_run",
           "read_run_info", "register_run_loader", "resolve_checkpoint", "run_config", "write_run_info"]

#: the run's metadata file, in OUTPUT_DIR
RUN_FILE = "run.json"
#: version of the run.json layout
RUN_FORMAT = 1
#: project name -> loader(run, checkpoint, device, **options)
RUN_LOADERS: Dict[str, Callable[..., Any]] = {}


def register_run_loader(project: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: ``@register_run_loader("simd")`` makes the function :func:`load_run`'s loader for runs whose
    ``run.json`` says ``"project": "simd"``. A name registered twice is an error."""
    return register_as(RUN_LOADERS, project)


@dataclass
class RunInfo:
    """The parsed ``run.json`` of a run folder."""

    output_dir: str
    project: str
    loader_module: str
    framework: str = "detectron2"
    config: str = "config.yaml"
    metadata: Dict[str, Any] = field(default_factory=dict)

    @property
    def config_file(self) -> str:
        """Absolute path of the run's resolved config."""
        return os.path.join(self.output_dir, self.config)


def write_run_info(cfg: Any, project: str, loader_module: str, *, framework: str = "detectron2",
                   **metadata: Any) -> Optional[str]:
    """Write ``cfg.OUTPUT_DIR/run.json`` (atomically, main process only); returns its path (None elsewhere or
    without an OUTPUT_DIR). ``metadata`` must be JSON-serialisable (a ``TypeError`` names the bad key)."""
    from detectron2.utils import comm

    if not comm.is_main_process() or not cfg.OUTPUT_DIR:
        return None
    for key, value in metadata.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError) as e:
            raise TypeError(f"run metadata {key!r} is not JSON-serialisable: {e}") from e
    record = {
        "format": RUN_FORMAT,
        "project": project,
        "loader_module": loader_module,
        "framework": framework,
        "config": "config.yaml",
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "metadata": metadata,
    }
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    path = os.path.join(cfg.OUTPUT_DIR, RUN_FILE)
    atomic_write_bytes(path, (json.dumps(record, indent=2) + "\n").encode())
    return path


def read_run_info(output_dir: str) -> RunInfo:
    """Parse ``output_dir/run.json``; a missing folder or file, malformed JSON or a missing key is an error
    naming the file."""
    if not os.path.isdir(output_dir):
        raise FileNotFoundError(f"run folder {output_dir!r} does not exist (give the OUTPUT_DIR of a "
                                "training run)")
    path = os.path.join(output_dir, RUN_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} not found: {output_dir!r} is not a run folder written by this toolkit's trainers (they "
            f"write {RUN_FILE} when training starts)")
    from shared.datasets.readers import load_json

    record = load_json(path, dict, what="run metadata")
    missing = [k for k in ("project", "loader_module") if k not in record]
    if missing:
        raise KeyError(f"{path}: missing key(s) {missing}")
    if int(record.get("format", RUN_FORMAT)) > RUN_FORMAT:
        raise ValueError(f"{path}: format {record['format']} is newer than this toolkit reads ({RUN_FORMAT})")
    return RunInfo(output_dir=os.path.abspath(output_dir), project=record["project"],
                   loader_module=record["loader_module"], framework=record.get("framework", "detectron2"),
                   config=record.get("config", "config.yaml"), metadata=dict(record.get("metadata", {})))


def resolve_checkpoint(output_dir: str, checkpoint: Optional[str] = None) -> str:
    """The weights file of a run.

    ``checkpoint`` None: the file named in ``last_checkpoint``, else ``model_final.pth``. Otherwise a path
    (used as is when it exists) or a name inside the run folder, with or without ``.pth`` (``model_0000999``).
    Nothing found: ``FileNotFoundError`` listing the checkpoints the folder has.
    """
    if checkpoint:
        candidates = [checkpoint, os.path.join(output_dir, checkpoint),
                      os.path.join(output_dir, checkpoint + ".pth")]
    else:
        candidates = []
        tag = os.path.join(output_dir, "last_checkpoint")
        if os.path.isfile(tag):
            with open(tag) as f:
                name = f.read().strip()
            if name:
                candidates.append(os.path.join(output_dir, name))
        candidates.append(os.path.join(output_dir, "model_final.pth"))
    for path in candidates:
        if os.path.isfile(path):
            return path
    have = sorted(f for f in os.listdir(output_dir) if f.endswith((".pth", ".pkl"))) if os.path.isdir(
        output_dir) else []
    raise FileNotFoundError(f"no checkpoint {checkpoint or 'last_checkpoint / model_final.pth'!r} in "
                            f"{output_dir!r} (tried {candidates}); the run folder holds "
                            f"{have or 'no checkpoint'}")


def run_config(run: RunInfo, add_project_config: Any, checkpoint: str, device: str,
               opts: Sequence[str] = ()):
    """The run's config for inference: ``build_cfg(add_project_config, run.config_file, ...)`` with
    ``MODEL.WEIGHTS`` = ``checkpoint`` and ``MODEL.DEVICE`` = ``device``; returned frozen."""
    from shared.engine.defaults import build_cfg

    if not os.path.isfile(run.config_file):
        raise FileNotFoundError(f"{run.config_file} not found: the run's resolved config is missing")
    framework = run.framework if run.framework in ("detectron2", "fastreid") else "detectron2"
    cfg = build_cfg(add_project_config, run.config_file,
                    ["MODEL.WEIGHTS", checkpoint, "MODEL.DEVICE", device, *opts], framework=framework)
    cfg.freeze()
    return cfg


def load_run(output_dir: str, checkpoint: Optional[str] = None, device: Optional[str] = None,
             **options: Any) -> Any:
    """A ready predictor / feature extractor for the run in ``output_dir``.

    Args:
        output_dir: the run's ``OUTPUT_DIR`` (holding ``run.json``, ``config.yaml`` and checkpoints).
        checkpoint: None (``last_checkpoint``, else ``model_final.pth``), a checkpoint name in the folder
            (``model_0000999``) or a path.
        device: ``"cpu"``, ``"cuda"``, ... ; None = CUDA when present, else the CPU.
        options: passed to the project's loader.
    """
    run = read_run_info(output_dir)
    if run.project not in RUN_LOADERS:
        importlib.import_module(run.loader_module)
    loader = get_or_raise(RUN_LOADERS, run.project, f"'project' of {os.path.join(output_dir, RUN_FILE)}")
    weights = resolve_checkpoint(run.output_dir, checkpoint)
    return loader(run, weights, resolve_device(device or "auto"), **options)


# ------------------------------------------------------------------------------------------------ detectors
def detection_metadata(dataset_names: Sequence[str]) -> Dict[str, Any]:
    """``thing_classes`` and ``thing_dataset_ids`` (the dataset's category id of each contiguous class, as
    detectron2's COCO / LVIS evaluators write them; None when the dataset has no id mapping) of the
    registered detection datasets ``dataset_names``, which must agree on the class list."""
    from detectron2.data import MetadataCatalog

    classes: Optional[List[str]] = None
    ids: Optional[List[int]] = None
    for name in dataset_names:
        meta = MetadataCatalog.get(name)
        these = list(meta.get("thing_classes", []) or [])
        if not these:
            continue
        if classes is not None and these != classes:
            raise ValueError(f"dataset {name!r} has other classes than {dataset_names[0]!r}; one model "
                             "cannot name both")
        classes = these
        mapping = meta.get("thing_dataset_id_to_contiguous_id", None)
        if mapping:
            inverse = {v: k for k, v in mapping.items()}
            ids = [int(inverse[i]) for i in range(len(these))]
        elif meta.get("evaluator_type", None) == "lvis":  # LVIS ids are 1..K, as LVISEvaluator writes them
            ids = list(range(1, len(these) + 1))
    return {"thing_classes": classes or [], "thing_dataset_ids": ids}


class DetectionRunPredictor(DefaultPredictor):
    """detectron2's ``DefaultPredictor`` for a trained run: ``predictor(image_bgr)`` returns
    ``{"instances": Instances}`` exactly as ``DefaultPredictor`` does (same resize, same format handling).

    Differences: the weights are loaded by :class:`~shared.engine.checkpoint.AtomicDetectionCheckpointer`
    (sha256-verified, every model tensor required), and the predictor knows the run's ``class_names`` and
    ``dataset_ids`` (for COCO results in the training json's category ids).
    """

    def __init__(self, cfg, class_names: Sequence[str], dataset_ids: Optional[Sequence[int]] = None,
                 build_model: Optional[Callable[[Any], Any]] = None):
        import detectron2.data.transforms as T
        from detectron2.data import Metadata
        from detectron2.modeling import build_model as d2_build_model

        from shared.engine.checkpoint import AtomicDetectionCheckpointer

        self.cfg = cfg.clone()
        self.model = (build_model or d2_build_model)(self.cfg)
        self.model.eval()
        num_classes = _num_classes(cfg)
        if num_classes is not None and len(class_names) != num_classes:
            raise ValueError(f"the run names {len(class_names)} classes but its model has {num_classes} "
                             "(MODEL.*.NUM_CLASSES)")
        checkpointer = AtomicDetectionCheckpointer(self.model)
        checkpointer.strict = True
        checkpointer.reinit_patterns = ()
        checkpointer.load(cfg.MODEL.WEIGHTS, checkpointables=[])
        size = cfg.INPUT.MIN_SIZE_TEST
        self.aug = T.ResizeShortestEdge([size, size], cfg.INPUT.MAX_SIZE_TEST)
        self.input_format = cfg.INPUT.FORMAT
        assert self.input_format in ("RGB", "BGR"), self.input_format
        self.class_names = list(class_names)
        self.dataset_ids = list(dataset_ids) if dataset_ids else list(range(len(self.class_names)))
        self.metadata = Metadata(name="run").set(thing_classes=self.class_names)

    def predict_file(self, path: str):
        """``Instances`` (on the CPU) for the image file ``path`` (EXIF orientation applied, as training)."""
        from detectron2.data.detection_utils import read_image

        return self(read_image(path, format="BGR"))["instances"].to("cpu")

    def coco_records(self, instances, image_id: int, file_name: Optional[str] = None) -> List[Dict[str, Any]]:
        """COCO result records (``image_id``, ``category_id`` in the dataset's ids, ``bbox`` XYWH, ``score``,
        and ``segmentation`` as RLE for mask models), plus ``file_name`` when given."""
        from detectron2.evaluation.coco_evaluation import instances_to_coco_json

        records = instances_to_coco_json(instances.to("cpu"), image_id)
        for r in records:
            r["category_id"] = int(self.dataset_ids[r["category_id"]])
            if file_name is not None:
                r["file_name"] = file_name
        return records

    def draw(self, image_bgr, instances, score_threshold: float = 0.0, min_long_side: int = 640):
        """RGB picture of ``instances`` with score >= ``score_threshold`` on ``image_bgr``, each labelled
        "<class name> <score %>"; an image whose long side is below ``min_long_side`` is enlarged to it
        (labels on tiny-object images stay readable)."""
        from detectron2.utils.visualizer import Visualizer

        keep = instances[instances.scores >= score_threshold] if len(instances) else instances
        scale = max(1.0, min_long_side / max(image_bgr.shape[:2]))
        visualizer = Visualizer(image_bgr[:, :, ::-1], self.metadata, scale=scale)
        return visualizer.draw_instance_predictions(keep.to("cpu")).get_image()


def _num_classes(cfg) -> Optional[int]:
    arch = cfg.MODEL.META_ARCHITECTURE
    if arch == "RetinaNet":
        return int(cfg.MODEL.RETINANET.NUM_CLASSES)
    if "RCNN" in arch:
        return int(cfg.MODEL.ROI_HEADS.NUM_CLASSES)
    return None
