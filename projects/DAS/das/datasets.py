"""Deep-metric-learning datasets read in the form their authors release them, and the DAS data loaders.

Root: ``$DETECTRON2_DATASETS`` (default ``./datasets``), read when a dataset is loaded, not at import.

Registered names and the on-disk forms read under the root (first the release, then the documented fallback):

* ``cub200_{train,test}``: ``CUB_200_2011/`` as extracted from ``CUB_200_2011.tgz``: ``images.txt``
  (``<image id> <path>``), ``image_class_labels.txt`` (``<image id> <class id>``), ``classes.txt`` and
  ``images/<path>``; classes 1-100 train, 101-200 test. Fallback: ``CUB_200_2011/`` or ``cub200/`` with only
  ``images/<class folder>/`` (the Revisiting-DML layout; folders sorted by their numeric prefix).
* ``cars196_{train,test}``: ``cars196/`` (or ``stanford_cars/``) holding ``cars_annos.mat`` +
  ``car_ims/*.jpg`` (the Stanford Cars release: ``annotations`` with ``relative_im_path`` and ``class``),
  or the devkit form torchvision's ``StanfordCars`` reads: ``cars_train/``, ``cars_test/``,
  ``devkit/cars_train_annos.mat``, ``cars_test_annos_withlabels.mat`` (``fname``, ``class``) and
  ``devkit/cars_meta.mat``; classes 1-98 train, 99-196 test over all images (the DML split; the release's
  train/test division is not used). Fallback: ``images/<class folder>/``. Nothing found: an error naming
  every form tried.
* ``sop_{train,test}``: ``Stanford_Online_Products/Ebay_{train,test}.txt`` with paths relative to that folder
  (the release). Fallback: ``online_products/Info_Files/Ebay_*.txt`` + ``online_products/images/<path>``
  (Revisiting-DML). 11,318 / 11,316 classes.
* ``inshop_{train,query,gallery}``: ``In-shop Clothes Retrieval Benchmark/`` (or ``in-shop/``) with
  ``Eval/list_eval_partition.txt`` and the images unzipped to ``Img/img/...`` (list paths ``img/...`` are
  relative to ``Img/``). Fallback: the list at the folder's top and ``img/...`` directly in the folder.
* ``synthetic_birds_{train,test}``: ``synthetic_birds/`` in the CUB release form, written by
  :func:`shared.datasets.synthetic_fine_grained.generate_synthetic_fine_grained`.

Each record is ``{"file_name": str, "label": int, "class_id": str}``. Training splits have contiguous labels
0..C-1 (what the DAS frequency matrix and banks index); query/gallery splits of In-Shop share one label space
(the numeric item id) so that query and gallery labels can be compared.

Loaders: batches are dicts ``{"images": float tensor [B, 3, H, W] in [0, 1], "labels": long [B],
"file_names": list}``; pixel normalisation happens in the model (``MODEL.PIXEL_MEAN`` / ``PIXEL_STD``).
"""
from __future__ import annotations

import itertools
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils import comm
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from das.sampler import ClassBalancedBatchSampler
from shared.datasets import dataset_root, require_path
from shared.datasets.readers import open_rgb

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
Record = Dict[str, object]


# ---------------------------------------------------------------------------------------------- parsers
def contiguous_labels(class_ids: Sequence[str]) -> List[int]:
    """Map class ids to 0..C-1 in sorted order of the distinct ids."""
    order = {c: i for i, c in enumerate(sorted(set(class_ids)))}
    return [order[c] for c in class_ids]


def _records(
    files: Sequence[str], class_ids: Sequence[str], labels: Optional[Sequence[int]] = None
) -> List[Record]:
    labels = contiguous_labels(class_ids) if labels is None else labels
    return [{"file_name": f, "label": int(lab), "class_id": c} for f, lab, c in zip(files, labels, class_ids)]


def _half_of(keys: Sequence, split: str) -> set:
    """The first half of the sorted ``keys`` for ``train``, the second half for ``test`` (DML protocol)."""
    keys = sorted(keys)
    half = len(keys) // 2
    return set(keys[:half] if split == "train" else keys[half:])


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
                    f"dataset {dataset!r}: {path}:{line_no} has {len(parts)} columns, "
                    f"expected {num_columns}: "
                    f"{line.strip()!r}"
                )
            rows.append(parts)
    if not rows:
        raise ValueError(f"dataset {dataset!r}: {path} lists no images")
    return rows


def _find_folder(names: Sequence[str], dataset: str) -> str:
    """The first of ``names`` that exists under the root; otherwise an error naming all of them."""
    root = dataset_root()
    for name in names:
        if os.path.isdir(os.path.join(root, name)):
            return os.path.join(root, name)
    alternatives = " or ".join(repr(n) for n in names[1:])
    return require_path(
        os.path.join(root, names[0]), dataset, hint=f"(or {alternatives})" if alternatives else ""
    )


def _class_folder_key(folder: str) -> Tuple[int, str]:
    """Sort key of a class folder: its numeric prefix (``"001.Black_footed_Albatross"`` -> 1), if any."""
    prefix = folder.split(".", 1)[0]
    return (int(prefix), folder) if prefix.isdigit() else (0, folder)


def load_class_folders(root: str, split: str, dataset: str) -> List[Record]:
    """``root/images/<class>/<image>`` (the Revisiting-DML layout): the first half of the class folders (by
    numeric prefix, else by name) is ``train``, the rest ``test``."""
    image_dir = require_path(os.path.join(root, "images"), dataset)
    classes = sorted((d for d in os.listdir(image_dir) if os.path.isdir(os.path.join(image_dir, d))),
                     key=_class_folder_key)
    if len(classes) < 2:
        raise ValueError(
            f"dataset {dataset!r}: {image_dir!r} needs at least 2 class folders, found {len(classes)}"
        )
    half = len(classes) // 2
    chosen = classes[:half] if split == "train" else classes[half:]
    files, class_ids = [], []
    for cls in chosen:
        names = sorted(
            n for n in os.listdir(os.path.join(image_dir, cls)) if n.lower().endswith(IMAGE_EXTENSIONS)
        )
        files += [os.path.join(image_dir, cls, n) for n in names]
        class_ids += [cls] * len(names)
    if not files:
        raise ValueError(f"dataset {dataset!r}: no images in the {split} classes under {image_dir!r}")
    return _records(files, class_ids)


def load_cub(root: str, split: str, dataset: str) -> List[Record]:
    """CUB-200-2011 as released: ``images.txt`` + ``image_class_labels.txt`` (+ ``classes.txt`` for the
    names); classes 1..100 train, 101..200 test. Without ``images.txt``: :func:`load_class_folders`."""
    if not os.path.exists(os.path.join(root, "images.txt")):
        return load_class_folders(root, split, dataset)
    images = dict(_read_table(os.path.join(root, "images.txt"), 0, 2, dataset))
    labels_file = require_path(os.path.join(root, "image_class_labels.txt"), dataset)
    class_of = dict(_read_table(labels_file, 0, 2, dataset))
    names: Dict[str, str] = {}
    if os.path.exists(os.path.join(root, "classes.txt")):
        names = dict(_read_table(os.path.join(root, "classes.txt"), 0, 2, dataset))
    missing = sorted(set(images) - set(class_of), key=int)
    if missing:
        raise ValueError(
            f"dataset {dataset!r}: image ids {missing[:5]} of images.txt have no class in {labels_file}"
        )
    chosen = _half_of({int(c) for c in class_of.values()}, split)
    ids = sorted((i for i in images if int(class_of[i]) in chosen), key=int)
    class_ids = [names.get(class_of[i], class_of[i]) for i in ids]
    labels = contiguous_labels([f"{int(class_of[i]):04d}" for i in ids])
    return _records([os.path.join(root, "images", images[i]) for i in ids], class_ids, labels)


#: Stanford Cars' devkit form: (annotation file, image folder) of its two halves, and the class-name file
CARS_DEVKIT = ((os.path.join("devkit", "cars_train_annos.mat"), "cars_train"),
               ("cars_test_annos_withlabels.mat", "cars_test"))
CARS_DEVKIT_META = os.path.join("devkit", "cars_meta.mat")


def _mat_annotations(mat_file: str, fields: Sequence[str], dataset: str):
    """The ``annotations`` struct array of a Stanford Cars ``.mat`` file and its ``fields`` as lists."""
    from scipy.io import loadmat

    try:
        annotations = loadmat(mat_file, squeeze_me=True)["annotations"]
        return [list(annotations[f].ravel()) for f in fields]
    except (KeyError, ValueError, TypeError, IndexError) as e:
        raise ValueError(f"dataset {dataset!r}: {mat_file} is not a Stanford Cars annotation file "
                         f"(needs annotations.{' and annotations.'.join(fields)}): {e}") from e


def load_cars_devkit(root: str, split: str, dataset: str) -> List[Record]:
    """Stanford Cars in its devkit form (:data:`CARS_DEVKIT`): both halves pooled, classes 1..98 train,
    99..196 test; class names from ``devkit/cars_meta.mat`` when present."""
    from scipy.io import loadmat

    paths, classes = [], []
    for mat, folder in CARS_DEVKIT:
        mat_file = require_path(os.path.join(root, mat), dataset)
        names, labels = _mat_annotations(mat_file, ("fname", "class"), dataset)
        paths += [os.path.join(root, folder, str(n)) for n in names]
        classes += [int(c) for c in labels]
    meta = os.path.join(root, CARS_DEVKIT_META)
    names = loadmat(meta, squeeze_me=True)["class_names"].ravel() if os.path.exists(meta) else []
    return _cars_records(paths, classes, [str(n) for n in names], split)


def _cars_records(paths: Sequence[str], classes: Sequence[int], names: Sequence[str],
                  split: str) -> List[Record]:
    """Records of the ``split`` half of the classes (1-based ``classes``; ``names[c - 1]`` when known)."""
    chosen = _half_of(set(classes), split)
    keep = [i for i, c in enumerate(classes) if c in chosen]
    class_ids = [names[classes[i] - 1] if len(names) >= classes[i] else str(classes[i]) for i in keep]
    labels = contiguous_labels([f"{classes[i]:04d}" for i in keep])
    return _records([paths[i] for i in keep], class_ids, labels)


def load_cars(root: str, split: str, dataset: str) -> List[Record]:
    """Stanford Cars as released: ``cars_annos.mat`` (``annotations.relative_im_path``, ``annotations.class``)
    with images relative to ``root``; classes 1..98 train, 99..196 test. Otherwise the devkit form
    (:func:`load_cars_devkit`), then :func:`load_class_folders`; none of them: ``FileNotFoundError`` naming
    every form tried."""
    mat_file = os.path.join(root, "cars_annos.mat")
    if not os.path.exists(mat_file):
        if os.path.exists(os.path.join(root, CARS_DEVKIT[0][0])):
            return load_cars_devkit(root, split, dataset)
        if os.path.isdir(os.path.join(root, "images")):
            return load_class_folders(root, split, dataset)
        tried = [mat_file + " (+ car_ims/)", os.path.join(root, CARS_DEVKIT[0][0]) + " (devkit form)",
                 os.path.join(root, "images") + "/<class folder>/"]
        raise FileNotFoundError(f"dataset {dataset!r}: {root} holds none of the Stanford Cars forms: "
                                + "; ".join(tried))
    from scipy.io import loadmat

    paths, classes = _mat_annotations(mat_file, ("relative_im_path", "class"), dataset)
    mat = loadmat(mat_file, squeeze_me=True)
    names = [str(n) for n in mat["class_names"].ravel()] if "class_names" in mat else []
    return _cars_records([os.path.join(root, str(p)) for p in paths], [int(c) for c in classes], names, split)


def load_sop(root: str, split: str, dataset: str) -> List[Record]:
    """Stanford Online Products from ``Ebay_{split}.txt`` (``image_id class_id super_class_id path``)."""
    require_path(root, dataset)
    name = f"Ebay_{split}.txt"
    if os.path.exists(os.path.join(root, name)):  # the release: list files at the top, paths relative to it
        list_file, image_base = os.path.join(root, name), root
    else:
        list_file = require_path(
            os.path.join(root, "Info_Files", name), dataset, hint=f"(or {name} at the top)"
        )
        image_base = os.path.join(root, "images")
    rows = _read_table(list_file, skip=1, num_columns=4, dataset=dataset)
    return _records([os.path.join(image_base, r[3]) for r in rows], [r[1] for r in rows])


def load_inshop(root: str, split: str, dataset: str) -> List[Record]:
    """In-Shop Clothes Retrieval from ``Eval/list_eval_partition.txt``; ``split``: train, query or gallery."""
    require_path(root, dataset)
    list_file = os.path.join(root, "Eval", "list_eval_partition.txt")
    if not os.path.exists(list_file):
        list_file = require_path(os.path.join(root, "list_eval_partition.txt"), dataset,
                                 hint="(or Eval/list_eval_partition.txt)")
    image_base = os.path.join(root, "Img") if os.path.isdir(os.path.join(root, "Img")) else root
    rows = [r for r in _read_table(list_file, skip=2, num_columns=3, dataset=dataset) if r[2] == split]
    if not rows:
        raise ValueError(f"dataset {dataset!r}: {list_file} has no rows with evaluation_status {split!r}")
    class_ids = [r[1] for r in rows]
    labels = None
    if split != "train":  # query and gallery must share a label space: the numeric item id
        labels = []
        for row in rows:
            number = row[1].rsplit("_", 1)[-1]
            if not number.isdigit():
                raise ValueError(f"dataset {dataset!r}: {list_file}: item id {row[1]!r} is not 'id_<number>'")
            labels.append(int(number))
    return _records([os.path.join(image_base, r[0]) for r in rows], class_ids, labels)


#: name -> (folders under the root, release first; loader; split)
METRIC_DATASETS: Dict[str, Tuple[Tuple[str, ...], Callable[[str, str, str], List[Record]], str]] = {}
for _prefix, _folders, _loader, _splits in (
    ("cub200", ("CUB_200_2011", "cub200"), load_cub, ("train", "test")),
    ("cars196", ("cars196", "stanford_cars"), load_cars, ("train", "test")),
    ("synthetic_birds", ("synthetic_birds",), load_cub, ("train", "test")),
    ("sop", ("Stanford_Online_Products", "online_products"), load_sop, ("train", "test")),
    (
        "inshop",
        ("In-shop Clothes Retrieval Benchmark", "in-shop"),
        load_inshop,
        ("train", "query", "gallery"),
    ),
):
    for _split in _splits:
        METRIC_DATASETS[f"{_prefix}_{_split}"] = (_folders, _loader, _split)


def load_metric_dataset(name: str) -> List[Record]:
    """The records of a registered metric-learning dataset (root read from the environment now)."""
    if name not in METRIC_DATASETS:
        raise KeyError(f"unknown metric-learning dataset {name!r}; known: {sorted(METRIC_DATASETS)}")
    folders, loader, split = METRIC_DATASETS[name]
    return loader(_find_folder(folders, name), split, name)


def register_metric_datasets() -> None:
    """Register every dataset of :data:`METRIC_DATASETS` in detectron2's catalogs (idempotent)."""
    for name in METRIC_DATASETS:
        if name in DatasetCatalog.list():
            continue
        DatasetCatalog.register(name, lambda name=name: load_metric_dataset(name))
        MetadataCatalog.get(name).set(evaluator_type="metric_learning")


register_metric_datasets()

SYNTHETIC_PREFIX = "synthetic_birds"


def prepare_synthetic_data(cfg):
    """Write the synthetic CUB-form set to ``$DETECTRON2_DATASETS/synthetic_birds`` when ``DATASETS.TRAIN`` /
    ``TEST`` name it (main process; cached by the generator's fingerprint). Returns ``cfg`` unchanged; used as
    the ``prepare`` step of :func:`shared.engine.setup`."""
    names = list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST) + list(cfg.DATASETS.TEST_GALLERY)
    if any(n.startswith(SYNTHETIC_PREFIX) for n in names):
        if comm.is_main_process():
            from shared.datasets.synthetic_fine_grained import generate_synthetic_fine_grained

            c = cfg.DATASETS.SYNTHETIC_FINE_GRAINED
            generate_synthetic_fine_grained(os.path.join(dataset_root(), SYNTHETIC_PREFIX), c.NUM_CLASSES,
                                            c.IMAGES_PER_CLASS, c.IMAGE_SIZE, c.SEED)
        comm.synchronize()
    return cfg


# ---------------------------------------------------------------------------------------------- loaders
def build_transform(cfg, is_train: bool) -> T.Compose:
    """Train: RandomResizedCrop(TRAIN_SIZE, CROP_SCALE) + horizontal flip. Test: resize TEST_RESIZE, centre
    crop (official dataset/basic_dataset_scaffold.py)."""
    if is_train:
        ops = [
            T.RandomResizedCrop(cfg.INPUT.TRAIN_SIZE, scale=tuple(cfg.INPUT.CROP_SCALE)),
            T.RandomHorizontalFlip(),
        ]
    else:
        ops = [T.Resize(cfg.INPUT.TEST_RESIZE), T.CenterCrop(cfg.INPUT.TEST_SIZE)]
    return T.Compose(ops + [T.ToTensor()])


class ImageRecords(Dataset):
    """Records ``{"file_name", "label"}`` -> ``(image tensor, label, file name)``."""

    def __init__(self, records: Sequence[Dict], transform: T.Compose):
        self.records = list(records)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        record = self.records[index]
        image = open_rgb(record["file_name"])  # a bad file is an ImageReadError (an OSError) naming it
        return self.transform(image), int(record["label"]), record["file_name"]


def collate_batch(samples) -> Dict[str, object]:
    """``(image, label, file)`` samples -> ``{"images", "labels", "file_names"}``."""
    images, labels, names = zip(*samples)
    return {"images": torch.stack(images), "labels": torch.tensor(labels, dtype=torch.long),
            "file_names": list(names)}


def get_records(names: Sequence[str]) -> List[Dict]:
    """Concatenated records of registered datasets; a multi-set training list must keep labels disjoint."""
    if not names:
        raise ValueError("no dataset given (DATASETS.TRAIN / DATASETS.TEST is empty)")
    return list(itertools.chain.from_iterable(DatasetCatalog.get(n) for n in names))


def local_batch_size(global_batch: int, samples_per_class: int, world_size: int) -> int:
    """Images per process: ``global_batch / world_size``, which must hold whole classes of K images."""
    if global_batch % (world_size * samples_per_class):
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH={global_batch} (the global batch) must split into {world_size} "
            f"processes of whole classes of DATALOADER.SAMPLES_PER_CLASS={samples_per_class} images"
        )
    return global_batch // world_size


def build_train_loader(cfg) -> DataLoader:
    """Infinite P×K loader over ``DATASETS.TRAIN``. ``SOLVER.IMS_PER_BATCH`` is the GLOBAL batch: every
    process draws the same global P×K batch (shared seed) and keeps its own contiguous share of classes, so N
    processes train on exactly the batches one process would."""
    records = get_records(cfg.DATASETS.TRAIN)
    k = cfg.DATALOADER.SAMPLES_PER_CLASS
    local_batch_size(cfg.SOLVER.IMS_PER_BATCH, k, comm.get_world_size())
    seed = cfg.SEED if cfg.SEED >= 0 else None
    sampler = ClassBalancedBatchSampler([r["label"] for r in records], cfg.SOLVER.IMS_PER_BATCH // k, k, seed,
                                        num_shards=comm.get_world_size(), shard=comm.get_rank())
    return DataLoader(ImageRecords(records, build_transform(cfg, True)), batch_sampler=sampler,
                      num_workers=cfg.DATALOADER.NUM_WORKERS, collate_fn=collate_batch)


def build_test_loader(cfg, records: Sequence[Dict], batch_size: int = 64) -> DataLoader:
    """One ordered pass over ``records`` with the test transform."""
    return DataLoader(
        ImageRecords(records, build_transform(cfg, False)),
        batch_size=batch_size,
        shuffle=False,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        collate_fn=collate_batch,
    )


def num_train_classes(cfg) -> int:
    """Rows of the DAS state for ``DATASETS.TRAIN``: 1 + the largest training label."""
    return 1 + max(int(r["label"]) for r in get_records(cfg.DATASETS.TRAIN))
