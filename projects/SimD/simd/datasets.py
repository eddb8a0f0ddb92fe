"""Registrations of AI-TOD, AI-TOD-v2, VisDrone2019-DET and SODA-D in their published COCO-json layouts
under ``$DETECTRON2_DATASETS`` (default ``./datasets``), each with its class list.

Accepted layouts (relative to the root; the first one found is used)::

    AI-TOD, official toolkit (generate_aitod_imgs.py):
                               aitod/annotations/aitod_{split}_v1.json, aitod/images/{split}/
    AI-TOD, older layout:      AI-TOD/annotations/aitod_{split}_v1.json, AI-TOD/{split}/images/
    AI-TOD-v2:                 the same trees with aitodv2_{split}.json
    VisDrone2019-DET:          visdrone/{split}/annotations/result.json, visdrone/{split}/images/
                               (tools/convert_visdrone.py writes it from the release's txt files)
    SODA-D (split patches):    SODA-D/divData/Annotations/{split}.json, SODA-D/divData/Images/{split}/
                               (written by SODA-D's split tool; evaluation merges the patches and scores the
                               full images against SODA-D/rawData/Annotations/{split}_wo_ignore.json)

Loading (:func:`load_simd_coco`) reads the json itself rather than through detectron2's ``load_coco_json``:

* classes are selected by name, so a VisDrone json that keeps "ignored regions" (0) and "others" (11) loads;
  "others" is dropped as mmdet's ``CocoDataset`` does for categories outside its class list (the official
  SimD VisDrone setup); ignored regions and objects with ``"ignore": true`` (SODA-D's split tool marks
  objects cut by a patch border so) or ``iscrowd`` become crowd regions, which training leaves out;
* ids and sizes are checked first (``shared.datasets.coco_checks.check_coco_records``), always an error
  naming the file, record and field: an annotation of an unknown image, a ``category_id`` that is not the
  integer id of an entry of ``categories`` (a string ``"3"``; 0-based ids get a hint), duplicate annotation,
  image or category ids, an image without a positive ``width`` / ``height``. Only categories that *are* in
  ``categories`` but not in the class list (VisDrone "others") are left out, with a count in the log;
* a box with a non-finite number, a non-positive width/height or less than half inside its image is an error
  naming the file, annotation id, image and field (``shared.datasets.coco_checks``);
  ``DATASETS.DROP_INVALID_BOXES True`` drops them and logs the count instead -- the m/n estimator and
  training read the same records, so they see the same boxes.

Registration is lazy and never touches the disk; loading a split whose json or image directory is
missing raises ``FileNotFoundError`` naming the paths and ``$DETECTRON2_DATASETS``. VisDrone "test" means
test-dev.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Dict, Iterable, List, Sequence, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from shared.datasets import dataset_root, require_path
from shared.datasets.coco_checks import check_coco_json_boxes, check_coco_records, read_coco_json
from shared.datasets.synthetic_tiny import AITOD_CLASSES, generate_synthetic_tiny, synthetic_tiny_split_files
from shared.datasets.synthetic_tiny import SODAD_NAMES as SODAD_CLASSES  # the official SODA-D class list

logger = logging.getLogger(__name__)

VISDRONE_CLASSES: Tuple[str, ...] = (
    "pedestrian",
    "people",
    "bicycle",
    "car",
    "van",
    "truck",
    "tricycle",
    "awning-tricycle",
    "bus",
    "motor",
)
#: category names that mark ignore regions (VisDrone's category 0) rather than a class
IGNORED_REGION_NAMES = ("ignored regions", "ignored-regions", "ignored_regions", "ignored region", "ignore")
DROP_HINT = "Fix the json, or set DATASETS.DROP_INVALID_BOXES True to drop such boxes (the count is logged)."


@dataclass(frozen=True)
class DatasetLayout:
    """Where one split of a dataset may live: ``(json, image dir)`` pairs relative to the dataset root, the
    first existing pair wins; plus the class names and the evaluation protocol."""

    candidates: Tuple[Tuple[str, str], ...]
    classes: Tuple[str, ...]
    protocol: str  # simd.evaluation protocol name
    full_image_json: str = ""  # SODA-D: the full-image annotations the patch detections are scored against

    def resolve(self, root: str, name: str) -> Tuple[str, str]:
        for json_file, image_dir in self.candidates:
            json_path, image_path = os.path.join(root, json_file), os.path.join(root, image_dir)
            if os.path.isfile(json_path) and os.path.isdir(image_path):
                return json_path, image_path
        tried = "; ".join(f"{j} + {i}" for j, i in self.candidates)
        # name the layout whose json is there (its image folder is what is wrong), else the first one
        json_file, image_dir = next(
            (c for c in self.candidates if os.path.isfile(os.path.join(root, c[0]))), self.candidates[0]
        )
        return (
            require_path(os.path.join(root, json_file), name, hint=f"Layouts tried: {tried}"),
            require_path(os.path.join(root, image_dir), name, hint=f"Layouts tried: {tried}"),
        )


def _aitod_splits(version: str) -> Dict[str, DatasetLayout]:
    layouts = {}
    for split in ("train", "val", "trainval", "test"):
        json_name = f"aitod_{split}_v1.json" if version == "v1" else f"aitodv2_{split}.json"
        layouts[f"aitod{'' if version == 'v1' else 'v2'}_{split}"] = DatasetLayout(
            (
                (os.path.join("aitod", "annotations", json_name), os.path.join("aitod", "images", split)),
                (os.path.join("AI-TOD", "annotations", json_name), os.path.join("AI-TOD", split, "images")),
            ),
            AITOD_CLASSES,
            "aitod",
        )
    return layouts


DATASET_LAYOUTS: Dict[str, DatasetLayout] = {
    **_aitod_splits("v1"),
    **_aitod_splits("v2"),
    **{
        f"visdrone2019_det_{split}": DatasetLayout(
            (
                (
                    os.path.join("visdrone", split, "annotations", "result.json"),
                    os.path.join("visdrone", split, "images"),
                ),
            ),
            VISDRONE_CLASSES,
            "coco",
        )
        for split in ("train", "val", "test")
    },
    **{
        f"sodad_{split}": DatasetLayout(
            (
                (
                    os.path.join("SODA-D", "divData", "Annotations", f"{split}.json"),
                    os.path.join("SODA-D", "divData", "Images", split),
                ),
            ),
            SODAD_CLASSES,
            "sodad",
            os.path.join("SODA-D", "rawData", "Annotations", f"{split}_wo_ignore.json"),
        )
        for split in ("train", "val", "test")
    },
}


def load_simd_coco(
    json_file: str, image_dir: str, name: str, classes: Sequence[str], drop_invalid_boxes: bool = False
) -> List[dict]:
    """detectron2 dataset dicts of a COCO json (see the module docstring for classes, ignore regions and
    invalid boxes). Annotations keep their ``id``; ``bbox_mode`` is ``XYWH_ABS``."""
    data = read_coco_json(json_file)
    check_coco_records(data, json_file)  # ids and image sizes: an error naming file, record and field
    data, dropped = check_coco_json_boxes(data, json_file, drop=drop_invalid_boxes, hint=DROP_HINT)
    if dropped:
        logger.warning(
            "dataset %r: dropped %d invalid box(es) of %s (DATASETS.DROP_INVALID_BOXES), first: %s",
            name,
            len(dropped),
            json_file,
            dropped[0].describe(),
        )
    by_name = {c.get("name"): c.get("id") for c in data["categories"]}
    missing = [c for c in classes if c not in by_name]
    if missing:
        raise ValueError(
            f"dataset {name!r}: {json_file} has no categories named {missing}; its categories are "
            f"{sorted(map(str, by_name))} and {list(classes)} are expected"
        )
    id_map = {by_name[c]: i for i, c in enumerate(classes)}
    ignore_ids = {
        c.get("id") for c in data["categories"] if str(c.get("name", "")).lower() in IGNORED_REGION_NAMES
    }
    per_image: Dict[object, List[dict]] = {}
    outside: Dict[object, int] = {}
    for ann in data["annotations"]:
        category = ann.get("category_id")
        if category in id_map:
            crowd = int(bool(ann.get("iscrowd", 0)) or bool(ann.get("ignore", 0)))
            label = id_map[category]
        elif category in ignore_ids:
            crowd, label = 1, 0
        else:  # in 'categories' (checked above) but not a class, e.g. VisDrone "others": dropped as mmdet's
            outside[category] = outside.get(category, 0) + 1  # CocoDataset does, with a count in the log
            continue
        per_image.setdefault(ann.get("image_id"), []).append(
            {
                "id": ann.get("id"),
                "bbox": [float(v) for v in ann["bbox"]],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": label,
                "iscrowd": crowd,
            }
        )
    records = []
    for image in data["images"]:
        try:
            records.append(
                {
                    "file_name": os.path.join(image_dir, image["file_name"]),
                    "height": int(image["height"]),
                    "width": int(image["width"]),
                    "image_id": image["id"],
                    "annotations": per_image.get(image["id"], []),
                }
            )
        except KeyError as e:
            raise ValueError(f"{json_file}: image record {image!r} has no {e.args[0]!r}") from e
    if outside:
        names = {c.get("id"): c.get("name") for c in data["categories"]}
        logger.info(
            "dataset %r: left out %d annotation(s) of categories outside the class list: %s",
            name,
            sum(outside.values()),
            ", ".join(f"{names.get(c)!r} (id {c}): {k}" for c, k in sorted(outside.items())),
        )
    MetadataCatalog.get(name).set(thing_dataset_id_to_contiguous_id=id_map)
    logger.info(
        "dataset %r: %d images, %d annotations from %s",
        name,
        len(records),
        sum(len(r["annotations"]) for r in records),
        json_file,
    )
    return records


def register_coco_dataset(
    name: str,
    json_file: str,
    image_dir: str,
    classes: Sequence[str],
    protocol: str,
    drop_invalid_boxes: bool = False,
) -> None:
    """Register ``name`` (re-registering when the files or the invalid-box policy changed)."""
    if name in DatasetCatalog.list():
        meta = MetadataCatalog.get(name)
        if meta.get("json_file") == json_file and meta.get("drop_invalid_boxes") == bool(drop_invalid_boxes):
            return
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(
        name, lambda: load_simd_coco(json_file, image_dir, name, classes, drop_invalid_boxes)
    )
    MetadataCatalog.get(name).set(
        json_file=json_file,
        image_root=image_dir,
        evaluator_type=protocol,
        thing_classes=list(classes),
        drop_invalid_boxes=bool(drop_invalid_boxes),
    )


def _register_layout(name: str, layout: DatasetLayout, root: str, drop_invalid_boxes: bool) -> None:
    if (
        name in DatasetCatalog.list()
        and MetadataCatalog.get(name).get("drop_invalid_boxes") == drop_invalid_boxes
        and MetadataCatalog.get(name).get("root") == root
    ):
        return
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)

    def load():
        json_file, image_dir = layout.resolve(root, name)
        MetadataCatalog.get(name).set(json_file=json_file, image_root=image_dir)
        return load_simd_coco(json_file, image_dir, name, layout.classes, drop_invalid_boxes)

    DatasetCatalog.register(name, load)
    json_file, image_dir = layout.candidates[0]
    for candidate in layout.candidates:  # the metadata points at the layout present on disk, if any
        if os.path.isfile(os.path.join(root, candidate[0])):
            json_file, image_dir = candidate
            break
    MetadataCatalog.get(name).set(
        json_file=os.path.join(root, json_file),
        image_root=os.path.join(root, image_dir),
        evaluator_type=layout.protocol,
        thing_classes=list(layout.classes),
        drop_invalid_boxes=drop_invalid_boxes,
        root=root,
    )
    if layout.full_image_json:
        MetadataCatalog.get(name).set(full_image_json_file=os.path.join(root, layout.full_image_json))


def register_simd_datasets(root: str = "", drop_invalid_boxes: bool = False) -> List[str]:
    """Register every split of ``DATASET_LAYOUTS`` under ``root`` (default: ``$DETECTRON2_DATASETS``), with
    the invalid-box policy ``drop_invalid_boxes``. Returns the names."""
    root = root or dataset_root()
    for name, layout in DATASET_LAYOUTS.items():
        _register_layout(name, layout, root, bool(drop_invalid_boxes))
    return list(DATASET_LAYOUTS)


SYNTHETIC_PREFIX = "synthetic_tiny"


def synthetic_tiny_root() -> str:
    """Where the demo / synthetic configs keep the generated set: ``$DETECTRON2_DATASETS/synthetic_tiny``."""
    return os.path.join(dataset_root(), SYNTHETIC_PREFIX)


def register_synthetic(
    root: str, prefix: str = SYNTHETIC_PREFIX, drop_invalid_boxes: bool = False
) -> List[str]:
    """Register ``<prefix>_train`` / ``<prefix>_val`` of the synthetic set under ``root`` (SimD loader)."""
    names = []
    for split in ("train", "val"):
        json_file, image_dir = synthetic_tiny_split_files(root, split)
        register_coco_dataset(
            f"{prefix}_{split}", json_file, image_dir, AITOD_CLASSES, "aitod", drop_invalid_boxes
        )
        names.append(f"{prefix}_{split}")
    return names


def register_datasets_for(dataset_names: Iterable[str], drop_invalid_boxes: bool = False) -> None:
    """Register the real datasets (lazily) and, when ``synthetic_tiny_*`` is asked for, generate the
    synthetic set if missing (cached) and register it; all with the invalid-box policy given. Datasets
    registered elsewhere with :func:`register_coco_dataset` are re-registered with that policy."""
    dataset_names = list(dataset_names)
    drop = bool(drop_invalid_boxes)
    register_simd_datasets(drop_invalid_boxes=drop)
    if any(name.startswith(SYNTHETIC_PREFIX) for name in dataset_names):
        root = generate_synthetic_tiny(synthetic_tiny_root())
        register_synthetic(root, drop_invalid_boxes=drop)
    for name in dataset_names:
        meta = MetadataCatalog.get(name) if name in DatasetCatalog.list() else None
        if (
            meta is not None
            and name not in DATASET_LAYOUTS
            and meta.get("drop_invalid_boxes") not in (None, drop)
        ):
            register_coco_dataset(
                name, meta.json_file, meta.image_root, meta.thing_classes, meta.evaluator_type, drop
            )
