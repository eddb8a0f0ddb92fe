"""Dataset loaders in the released forms (and their documented fallbacks), the synthetic generator that writes
those forms, the synthetic-data step of train_net.py, and the P×K sampler."""
import hashlib
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog

import das  # noqa: F401
from das.datasets import (
    load_cars,
    load_cub,
    load_inshop,
    load_metric_dataset,
    load_sop,
    prepare_synthetic_data,
)
from das.sampler import ClassBalancedBatchSampler
from shared.datasets.synthetic_fine_grained import class_folder_name, generate_synthetic_fine_grained


def _digest(root):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            h.update(name.encode())
            with open(os.path.join(dirpath, name), "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def _write(path, *lines):
    """Write ``lines`` (newline-terminated) to ``path``, creating its folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


def test_generator_layout_and_determinism(das_dataset_root, tmp_path):
    root = das_dataset_root / "synthetic_birds"
    folders = sorted(os.listdir(root / "images"))
    assert folders == [class_folder_name(i) for i in range(8)] and folders[0] == "001.synthetic_bird_001"
    assert all(len(os.listdir(root / "images" / f)) == 4 for f in folders)
    other = generate_synthetic_fine_grained(str(tmp_path / "again"), num_classes=8, images_per_class=4,
                                            image_size=32, seed=0)
    assert _digest(os.path.join(other, "images")) == _digest(root / "images")
    mtime = os.path.getmtime(root / "_meta.json")
    generate_synthetic_fine_grained(str(root), num_classes=8, images_per_class=4, image_size=32, seed=0)
    assert os.path.getmtime(root / "_meta.json") == mtime  # second call is a no-op
    with pytest.raises(ValueError, match="at least 2"):
        generate_synthetic_fine_grained(str(tmp_path / "bad"), num_classes=1)


def test_registered_split_first_half_of_classes(das_dataset_root, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(das_dataset_root))
    train = DatasetCatalog.get("synthetic_birds_train")
    test = load_metric_dataset("synthetic_birds_test")
    assert len(train) == len(test) == 16
    assert {r["class_id"] for r in train} == {class_folder_name(i) for i in range(4)}
    assert {r["class_id"] for r in test} == {class_folder_name(i) for i in range(4, 8)}
    assert sorted({r["label"] for r in train}) == [0, 1, 2, 3] == sorted({r["label"] for r in test})
    assert all(os.path.isfile(r["file_name"]) for r in train + test)


@pytest.mark.parametrize("layout, folder, prefix, splits", [
    ("cub", "CUB_200_2011", "cub200", ("train", "test")),
    ("cars", "cars196", "cars196", ("train", "test")),
    ("cars_devkit", "stanford_cars", "cars196", ("train", "test")),
    ("sop", "Stanford_Online_Products", "sop", ("train", "test")),
    ("inshop", "In-shop Clothes Retrieval Benchmark", "inshop", ("train", "query", "gallery")),
])
def test_release_forms_load_through_the_registered_names(
    layout, folder, prefix, splits, tmp_path, monkeypatch
):
    """The generator writes each dataset as released; the registered dataset reads it with the real parser."""
    generate_synthetic_fine_grained(str(tmp_path / folder), num_classes=4, images_per_class=4, image_size=16,
                                    seed=0, layout=layout)
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    records = {split: load_metric_dataset(f"{prefix}_{split}") for split in splits}
    assert all(os.path.isfile(r["file_name"]) for rs in records.values() for r in rs)
    train_labels = [r["label"] for r in records["train"]]
    if layout == "cars_devkit":  # the order of the devkit's two annotation files
        train_labels = sorted(train_labels)
    assert train_labels == [0] * 4 + [1] * 4  # classes 1-2 train, contiguous labels
    if layout == "inshop":
        assert (
            [r["label"] for r in records["query"]] == [3, 3, 4, 4] == [r["label"] for r in records["gallery"]]
        )
        assert records["query"][0]["file_name"].startswith(str(tmp_path / folder / "Img" / "img"))
    else:
        assert sorted(r["label"] for r in records["test"]) == [0] * 4 + [1] * 4
        assert not {r["file_name"] for r in records["train"]} & {r["file_name"] for r in records["test"]}
    if layout == "cub":
        assert records["test"][0]["class_id"] == "003.synthetic_bird_003"
    if layout == "cars":
        assert records["train"][0]["file_name"] == str(tmp_path / folder / "car_ims" / "000001.jpg")
    if layout == "cars_devkit":  # both halves pooled: class 1's images 0, 2 in cars_train, 1, 3 in cars_test
        class_1 = [r for r in records["train"] if r["label"] == 0]
        assert sorted(r["file_name"][len(str(tmp_path / folder)) + 1:] for r in class_1) == [
            "cars_test/00001.jpg", "cars_test/00002.jpg", "cars_train/00001.jpg", "cars_train/00002.jpg"]
        assert class_1[0]["class_id"] == "Synthetic Car 001"


def test_cub_lists_are_read_by_class_id_not_by_file_order(tmp_path):
    root = tmp_path / "CUB_200_2011"
    (root / "images").mkdir(parents=True)
    (root / "images.txt").write_text("1 010.b/x1.jpg\n2 002.a/y1.jpg\n3 010.b/x2.jpg\n4 003.c/z.jpg\n")
    (root / "image_class_labels.txt").write_text("1 10\n2 2\n3 10\n4 3\n")
    (root / "classes.txt").write_text("2 002.a\n3 003.c\n10 010.b\n")
    train = load_cub(str(root), "train", "cub200_train")  # classes {2, 3, 10}: train = [2], test = [3, 10]
    assert [(r["class_id"], r["label"]) for r in train] == [("002.a", 0)]
    test = load_cub(str(root), "test", "cub200_test")
    assert [(r["class_id"], r["label"]) for r in test] == [
        ("010.b", 1),
        ("010.b", 1),
        ("003.c", 0),
    ]  # by image id
    assert test[0]["file_name"] == str(root / "images" / "010.b" / "x1.jpg")
    (root / "image_class_labels.txt").write_text("1 10\n2 2\n3 10\n")
    with pytest.raises(ValueError, match=r"image ids \['4'\] of images.txt have no class"):
        load_cub(str(root), "train", "cub200_train")


def test_revisiting_dml_class_folders_are_the_documented_fallback(tmp_path, monkeypatch):
    for folder in ("10.ten", "2.two", "1.one", "3.three"):  # numeric prefixes, not names, give the order
        (tmp_path / "cub200" / "images" / folder).mkdir(parents=True)
        (tmp_path / "cub200" / "images" / folder / "a.jpg").write_bytes(b"")
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    assert [r["class_id"] for r in load_metric_dataset("cub200_train")] == ["1.one", "2.two"]
    assert [r["class_id"] for r in load_metric_dataset("cub200_test")] == ["3.three", "10.ten"]


def test_a_mat_file_that_is_not_stanford_cars_is_refused(tmp_path):
    from scipy.io import savemat

    savemat(str(tmp_path / "cars_annos.mat"), {"something": [1, 2]})
    with pytest.raises(ValueError, match="cars_annos.mat is not a Stanford Cars annotation file"):
        load_cars(str(tmp_path), "train", "cars196_train")


def test_train_net_prepares_the_synthetic_set_only_when_asked(tmp_path, monkeypatch):
    from das.config import add_das_config

    from shared.engine import build_cfg

    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    base = os.path.join(os.path.dirname(__file__), "..", "..", "projects", "DAS", "configs")
    cub = build_cfg(add_das_config, os.path.join(base, "CUB200", "multi_similarity.yaml"))
    prepare_synthetic_data(cub)
    assert os.listdir(tmp_path) == []
    synthetic = build_cfg(add_das_config, os.path.join(base, "Synthetic", "triplet_distance.yaml"),
                          ["DATASETS.SYNTHETIC_FINE_GRAINED.NUM_CLASSES", "4",
                           "DATASETS.SYNTHETIC_FINE_GRAINED.IMAGES_PER_CLASS", "2",
                           "DATASETS.SYNTHETIC_FINE_GRAINED.IMAGE_SIZE", "16"])
    prepare_synthetic_data(synthetic)
    assert len(load_metric_dataset("synthetic_birds_train")) == 4
    assert (tmp_path / "synthetic_birds" / "images.txt").is_file()


def test_missing_dataset_names_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    for name in ("cub200_train", "cars196_test", "sop_train", "inshop_query"):
        with pytest.raises(FileNotFoundError, match="DETECTRON2_DATASETS"):
            load_metric_dataset(name)
    with pytest.raises(KeyError, match="unknown metric-learning dataset"):
        load_metric_dataset("cub2011_train")


def test_sop_list_files(tmp_path):
    root = tmp_path / "online_products"
    _write(root / "Info_Files" / "Ebay_train.txt", "image_id class_id super_class_id path",
           "1 1 1 bicycle_final/111085122871_0.JPG", "2 1 1 bicycle_final/111085122871_1.JPG",
           "3 7 2 cabinet_final/222_0.JPG")
    records = load_sop(str(root), "train", "sop_train")
    assert [r["label"] for r in records] == [0, 0, 1]
    assert records[2]["file_name"] == str(root / "images" / "cabinet_final" / "222_0.JPG")
    _write(root / "Info_Files" / "Ebay_test.txt", "image_id class_id super_class_id path", "1 2 bad")
    with pytest.raises(ValueError, match=r"Ebay_test.txt:2 has 3 columns"):
        load_sop(str(root), "test", "sop_test")
    # original release: list files at the root, paths relative to it
    flat = tmp_path / "sop_flat"
    _write(flat / "Ebay_test.txt", "image_id class_id super_class_id path", "5 11319 1 a/b.JPG")
    assert load_sop(str(flat), "test", "sop_test")[0]["file_name"] == str(flat / "a" / "b.JPG")


def test_inshop_partition(tmp_path):
    root = tmp_path / "in-shop"
    _write(root / "Eval" / "list_eval_partition.txt", "5", "image_name item_id evaluation_status",
           "img/WOMEN/Dresses/id_00000002/02_1_front.jpg id_00000002 train",
           "img/WOMEN/Dresses/id_00000009/02_1_front.jpg id_00000009 query",
           "img/WOMEN/Dresses/id_00000009/02_2_side.jpg id_00000009 gallery",
           "img/MEN/Denim/id_00000080/01_1_front.jpg id_00000080 gallery",
           "img/WOMEN/Dresses/id_00000003/01_1_front.jpg id_00000003 train")
    train = load_inshop(str(root), "train", "inshop_train")
    assert [r["label"] for r in train] == [0, 1]
    query = load_inshop(str(root), "query", "inshop_query")
    gallery = load_inshop(str(root), "gallery", "inshop_gallery")
    assert [r["label"] for r in query] == [9] and [r["label"] for r in gallery] == [9, 80]
    assert gallery[1]["file_name"] == str(root / "img/MEN/Denim/id_00000080/01_1_front.jpg")


def test_class_balanced_sampler():
    labels = np.repeat(np.arange(10), [5, 5, 5, 5, 5, 5, 5, 5, 5, 1])
    sampler = ClassBalancedBatchSampler(labels, classes_per_batch=4, samples_per_class=2, seed=3)
    batches = [b for b, _ in zip(iter(sampler), range(50))]
    for batch in batches:
        assert len(batch) == 8
        batch_labels = labels[batch]
        assert len(set(batch_labels.tolist())) == 4
        assert all((batch_labels == c).sum() == 2 for c in set(batch_labels.tolist()))
        for c in set(batch_labels.tolist()):
            idx = [i for i in batch if labels[i] == c]
            if c != 9:  # without replacement when the class is big enough
                assert len(set(idx)) == 2
    again = [b for b, _ in zip(iter(ClassBalancedBatchSampler(labels, 4, 2, seed=3)), range(50))]
    assert again == batches
    assert {int(c) for b in batches for c in labels[b]} == set(range(10))
    with pytest.raises(ValueError, match="only 10"):
        ClassBalancedBatchSampler(labels, 11, 2, seed=0)
    with pytest.raises(ValueError, match="empty"):
        ClassBalancedBatchSampler([], 1, 2, seed=0)


def test_cars_without_any_known_form_names_every_form_tried(tmp_path, monkeypatch):
    (tmp_path / "stanford_cars").mkdir()
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"cars_annos.mat .*devkit/cars_train_annos.mat .*images"):
        load_metric_dataset("cars196_train")
    (tmp_path / "stanford_cars").rmdir()
    with pytest.raises(FileNotFoundError, match=r"cars196.*stanford_cars"):
        load_metric_dataset("cars196_train")
