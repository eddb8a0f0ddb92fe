"""Registrations of AI-TOD, AI-TOD-v2, VisDrone2019-DET and SODA-D in their published COCO-json layouts
under ``$DETECTRON2_DATASETS`` (default ``./datasets``), each with its class list.

Expected layout (relative to the root)::

    AI-TOD/annotations/aitod_{train,val,trainval,test}_v1.json    images: AI-TOD/{split}/images/
    AI-TOD/annotations/aitodv2_{train,val,trainval,test}.json     (AI-TOD-v2: same images)
    visdrone/{train,val,test}/annotations/result.json             images: visdrone/{split}/images/
    SODA-D/divData/Annotations/{train,val,test}.json              images: SODA-D/divData/Images/{split}/

Registration is lazy and never touches the disk; loading a split whose json or image directory is
missing raises ``FileNotFoundError`` naming the path and ``$DETECTRON2_DATASETS``.
VisDrone: the json is expected to hold the 10 classes only (ignored regions, category 0, and "others",
11, dropped during conversion); "test" means test-dev.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Iterable, List, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from shared.datasets import dataset_root, require_path
from shared.datasets.synthetic_tiny import AITOD_CLASSES, generate_synthetic_tiny, register_synthetic_tiny

VISDRONE_CLASSES: Tuple[str, ...] = (
    "pedestrian", "people", "bicycle", "car", "van", "truck", "tricycle", "awning-tricycle", "bus", "motor",
)
SODAD_CLASSES: Tuple[str, ...] = (
    "people", "rider", "bicycle", "motor", "vehicle", "traffic-sign", "traffic-light", "traffic-camera",
    "warning-cone",
)


@dataclass(frozen=True)
class DatasetLayout:
    """Where one split of a dataset lives (paths relative to the dataset root) and how it is evaluated."""

    json_file: str
    image_dir: str
    classes: Tuple[str, ...]
    protocol: str  # simd.evaluation protocol name


def _aitod_splits(version: str) -> Dict[str, DatasetLayout]:
    layouts = {}
    for split in ("train", "val", "trainval", "test"):
        json_name = f"aitod_{split}_v1.json" if version == "v1" else f"aitodv2_{split}.json"
        layouts[f"aitod{'' if version == 'v1' else 'v2'}_{split}"] = DatasetLayout(
            os.path.join("AI-TOD", "annotations", json_name), os.path.join("AI-TOD", split, "images"),
            AITOD_CLASSES, "aitod")
    return layouts


DATASET_LAYOUTS: Dict[str, DatasetLayout] = {
    **_aitod_splits("v1"),
    **_aitod_splits("v2"),
    **{f"visdrone2019_det_{split}": DatasetLayout(
        os.path.join("visdrone", split, "annotations", "result.json"), os.path.join("visdrone", split, "images"),
        VISDRONE_CLASSES, "coco") for split in ("train", "val", "test")},
    **{f"sodad_{split}": DatasetLayout(
        os.path.join("SODA-D", "divData", "Annotations", f"{split}.json"),
        os.path.join("SODA-D", "divData", "Images", split), SODAD_CLASSES, "sodad")
       for split in ("train", "val", "test")},
}


def _load(name: str, layout: DatasetLayout, root: str) -> List[dict]:
    json_file = require_path(os.path.join(root, layout.json_file), name)
    image_dir = require_path(os.path.join(root, layout.image_dir), name)
    try:
        return load_coco_json(json_file, image_dir, name)
    except AssertionError as e:  # detectron2's Metadata refuses a different thing_classes list
        raise ValueError(f"dataset {name!r}: the categories of {json_file} are not the expected "
                         f"{list(layout.classes)} ({e})") from e


def register_simd_datasets(root: str = "") -> List[str]:
    """Register every split of ``DATASET_LAYOUTS`` under ``root`` (default: ``$DETECTRON2_DATASETS``).
    Already registered names are left alone. Returns the names."""
    root = root or dataset_root()
    for name, layout in DATASET_LAYOUTS.items():
        if name in DatasetCatalog.list():
            continue
        DatasetCatalog.register(name, lambda name=name, layout=layout: _load(name, layout, root))
        MetadataCatalog.get(name).set(
            json_file=os.path.join(root, layout.json_file), image_root=os.path.join(root, layout.image_dir),
            evaluator_type=layout.protocol, thing_classes=list(layout.classes))
    return list(DATASET_LAYOUTS)


SYNTHETIC_PREFIX = "synthetic_tiny"


def synthetic_tiny_root() -> str:
    """Where the demo / synthetic configs keep the generated set: ``$DETECTRON2_DATASETS/synthetic_tiny``."""
    return os.path.join(dataset_root(), SYNTHETIC_PREFIX)


def register_datasets_for(dataset_names: Iterable[str]) -> None:
    """Register the real datasets (lazily) and, when ``synthetic_tiny_*`` is asked for, generate the
    synthetic set if missing (cached) and register it."""
    register_simd_datasets()
    if any(name.startswith(SYNTHETIC_PREFIX) for name in dataset_names):
        root = generate_synthetic_tiny(synthetic_tiny_root())
        register_synthetic_tiny(root)
