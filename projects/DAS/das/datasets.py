"""Deep-metric-learning datasets in their published on-disk layouts, registered in detectron2's DatasetCatalog.

Root: ``$DETECTRON2_DATASETS`` (default ``./datasets``), read when a dataset is loaded, not at import.

=====================  ==========================================================================================
name                   on-disk layout under the root
=====================  ==========================================================================================
``cub200_{train,test}``    ``cub200/images/<class folder>/*.jpg`` (200 folders ``001.Black_footed_Albatross`` ...;
                           sorted first 100 = train, last 100 = test), i.e. ``CUB_200_2011/images`` renamed
``cars196_{train,test}``   ``cars196/images/<class folder>/*.jpg`` (196 folders; first 98 train, last 98 test)
``sop_{train,test}``       ``online_products/Info_Files/Ebay_{train,test}.txt`` + ``online_products/images/<path>``
                           (Revisiting-DML layout) or the original release: ``online_products/Ebay_*.txt`` with
                           paths relative to ``online_products/``. Columns ``image_id class_id super_class_id path``
                           after one header line; 11,318 train / 11,316 test classes
``inshop_{train,query,gallery}``  ``in-shop/list_eval_partition.txt`` (or ``in-shop/Eval/...``): a count line, a
                           header line, then ``image_name item_id evaluation_status``; images relative to ``in-shop/``
``synthetic_birds_{train,test}``  ``synthetic_birds/images/<class folder>/*.jpg``, written by
                           :func:`shared.datasets.synthetic_fine_grained.generate_synthetic_fine_grained`
=====================  ==========================================================================================

Each record is ``{"file_name": str, "label": int, "class_id": str}``. Training splits have contiguous labels
0..C−1 (what the DAS frequency matrix and banks index); query/gallery splits of In-Shop share one label space
(the numeric item id) so that query and gallery labels can be compared.
"""
from __future__ import annotations

import os
from typing import Callable, Dict, List, Sequence, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog

from shared.datasets import dataset_root, require_path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
Record = Dict[str, object]


def contiguous_labels(class_ids: Sequence[str]) -> List[int]:
    """Map class ids to 0..C−1 in sorted order of the distinct ids."""
    order = {c: i for i, c in enumerate(sorted(set(class_ids)))}
    return [order[c] for c in class_ids]


def load_image_folder(root: str, split: str, dataset: str) -> List[Record]:
    """``root/images/<class>/<image>`` with the sorted first half of the classes as ``train``, the rest ``test``."""
    image_dir = require_path(os.path.join(root, "images"), dataset)
    classes = sorted(d for d in os.listdir(image_dir) if os.path.isdir(os.path.join(image_dir, d)))
    if len(classes) < 2:
        raise ValueError(f"dataset {dataset!r}: {image_dir!r} needs at least 2 class folders, found {len(classes)}")
    half = len(classes) // 2
    chosen = classes[:half] if split == "train" else classes[half:]
    files, class_ids = [], []
    for cls in chosen:
        names = sorted(n for n in os.listdir(os.path.join(image_dir, cls)) if n.lower().endswith(IMAGE_EXTENSIONS))
        files += [os.path.join(image_dir, cls, n) for n in names]
        class_ids += [cls] * len(names)
    if not files:
        raise ValueError(f"dataset {dataset!r}: no images in the {split} classes under {image_dir!r}")
    return [{"file_name": f, "label": lab, "class_id": c} for f, lab, c in zip(files, contiguous_labels(class_ids),
                                                                          class_ids)]


def _read_table(path: str, skip: int, num_columns: int, dataset: str) -> List[List[str]]:
    """Whitespace-separated rows after ``skip`` header lines; a row with the wrong column count raises."""
    rows = []
    with open(path) as f:
        for line_no, line in enumerate(f, start=1):
            if line_no <= skip or not line.strip():
                continue
            parts = line.split()
            if len(parts) != num_columns:
                raise ValueError(
                    f"dataset {dataset!r}: {path}:{line_no} has {len(parts)} columns, expected {num_columns}: "
                    f"{line.strip()!r}"
                )
            rows.append(parts)
    if not rows:
        raise ValueError(f"dataset {dataset!r}: {path} lists no images")
    return rows


def load_sop(root: str, split: str, dataset: str) -> List[Record]:
    """Stanford Online Products from ``Ebay_{split}.txt`` (``image_id class_id super_class_id path``)."""
    require_path(root, dataset)
    name = f"Ebay_{split}.txt"
    if os.path.exists(os.path.join(root, "Info_Files", name)):
        list_file, image_base = os.path.join(root, "Info_Files", name), os.path.join(root, "images")
    else:
        list_file = require_path(os.path.join(root, name), dataset, hint="(or Info_Files/" + name + ")")
        image_base = root
    rows = _read_table(list_file, skip=1, num_columns=4, dataset=dataset)
    class_ids = [r[1] for r in rows]
    return [{"file_name": os.path.join(image_base, r[3]), "label": lab, "class_id": c}
            for r, lab, c in zip(rows, contiguous_labels(class_ids), class_ids)]


def load_inshop(root: str, split: str, dataset: str) -> List[Record]:
    """In-Shop Clothes Retrieval from ``list_eval_partition.txt``; ``split`` ∈ {train, query, gallery}."""
    require_path(root, dataset)
    list_file = os.path.join(root, "list_eval_partition.txt")
    if not os.path.exists(list_file):
        list_file = require_path(os.path.join(root, "Eval", "list_eval_partition.txt"), dataset)
    rows = [r for r in _read_table(list_file, skip=2, num_columns=3, dataset=dataset) if r[2] == split]
    if not rows:
        raise ValueError(f"dataset {dataset!r}: {list_file} has no rows with evaluation_status {split!r}")
    class_ids = [r[1] for r in rows]
    if split == "train":
        labels = contiguous_labels(class_ids)
    else:  # query and gallery must share a label space: the numeric item id
        labels = [int(c.rsplit("_", 1)[-1]) for c in class_ids]
    return [{"file_name": os.path.join(root, r[0]), "label": lab, "class_id": c}
            for r, lab, c in zip(rows, labels, class_ids)]


#: name → (folder under the root, loader, split)
METRIC_DATASETS: Dict[str, Tuple[str, Callable[[str, str, str], List[Record]], str]] = {}
for _prefix, _folder, _loader, _splits in (
    ("cub200", "cub200", load_image_folder, ("train", "test")),
    ("cars196", "cars196", load_image_folder, ("train", "test")),
    ("synthetic_birds", "synthetic_birds", load_image_folder, ("train", "test")),
    ("sop", "online_products", load_sop, ("train", "test")),
    ("inshop", "in-shop", load_inshop, ("train", "query", "gallery")),
):
    for _split in _splits:
        METRIC_DATASETS[f"{_prefix}_{_split}"] = (_folder, _loader, _split)


def dataset_directory(name: str) -> str:
    """Where dataset ``name`` lives: ``$DETECTRON2_DATASETS/<folder>``."""
    return os.path.join(dataset_root(), METRIC_DATASETS[name][0])


def load_metric_dataset(name: str) -> List[Record]:
    """The records of a registered metric-learning dataset (root read from the environment now)."""
    if name not in METRIC_DATASETS:
        raise KeyError(f"unknown metric-learning dataset {name!r}; known: {sorted(METRIC_DATASETS)}")
    folder, loader, split = METRIC_DATASETS[name]
    return loader(os.path.join(dataset_root(), folder), split, name)


def register_metric_datasets() -> None:
    """Register every dataset of :data:`METRIC_DATASETS` in detectron2's catalogs (idempotent)."""
    for name in METRIC_DATASETS:
        if name in DatasetCatalog.list():
            continue
        DatasetCatalog.register(name, lambda name=name: load_metric_dataset(name))
        MetadataCatalog.get(name).set(evaluator_type="metric_learning")


register_metric_datasets()
