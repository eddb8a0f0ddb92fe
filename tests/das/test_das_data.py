"""Dataset loaders in the published layouts, the synthetic CUB-layout generator and the P×K sampler."""
import hashlib
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog

import das  # noqa: F401
from das.datasets import load_inshop, load_metric_dataset, load_sop
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


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    base = tmp_path_factory.mktemp("das_datasets")
    generate_synthetic_fine_grained(str(base / "synthetic_birds"), num_classes=6, images_per_class=4,
                                    image_size=32, seed=0)
    return base


def test_generator_layout_and_determinism(synthetic_root, tmp_path):
    root = synthetic_root / "synthetic_birds"
    folders = sorted(os.listdir(root / "images"))
    assert folders == [class_folder_name(i) for i in range(6)] and folders[0] == "001.synthetic_bird_001"
    assert all(len(os.listdir(root / "images" / f)) == 4 for f in folders)
    other = generate_synthetic_fine_grained(str(tmp_path / "again"), num_classes=6, images_per_class=4,
                                            image_size=32, seed=0)
    assert _digest(os.path.join(other, "images")) == _digest(root / "images")
    mtime = os.path.getmtime(root / "_meta.json")
    generate_synthetic_fine_grained(str(root), num_classes=6, images_per_class=4, image_size=32, seed=0)
    assert os.path.getmtime(root / "_meta.json") == mtime  # second call is a no-op
    with pytest.raises(ValueError, match="at least 2"):
        generate_synthetic_fine_grained(str(tmp_path / "bad"), num_classes=1)


def test_registered_split_first_half_of_classes(synthetic_root, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(synthetic_root))
    train = DatasetCatalog.get("synthetic_birds_train")
    test = load_metric_dataset("synthetic_birds_test")
    assert len(train) == len(test) == 12
    assert {r["class_id"] for r in train} == {class_folder_name(i) for i in range(3)}
    assert {r["class_id"] for r in test} == {class_folder_name(i) for i in range(3, 6)}
    assert sorted({r["label"] for r in train}) == [0, 1, 2] == sorted({r["label"] for r in test})
    assert all(os.path.isfile(r["file_name"]) for r in train + test)


def test_missing_dataset_names_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    for name in ("cub200_train", "cars196_test", "sop_train", "inshop_query"):
        with pytest.raises(FileNotFoundError, match="DETECTRON2_DATASETS"):
            load_metric_dataset(name)
    with pytest.raises(KeyError, match="unknown metric-learning dataset"):
        load_metric_dataset("cub2011_train")


def test_sop_list_files(tmp_path):
    root = tmp_path / "online_products"
    (root / "Info_Files").mkdir(parents=True)
    (root / "Info_Files" / "Ebay_train.txt").write_text(
        "image_id class_id super_class_id path\n"
        "1 1 1 bicycle_final/111085122871_0.JPG\n"
        "2 1 1 bicycle_final/111085122871_1.JPG\n"
        "3 7 2 cabinet_final/222_0.JPG\n"
    )
    records = load_sop(str(root), "train", "sop_train")
    assert [r["label"] for r in records] == [0, 0, 1]
    assert records[2]["file_name"] == str(root / "images" / "cabinet_final" / "222_0.JPG")
    (root / "Info_Files" / "Ebay_test.txt").write_text("image_id class_id super_class_id path\n1 2 bad\n")
    with pytest.raises(ValueError, match=r"Ebay_test.txt:2 has 3 columns"):
        load_sop(str(root), "test", "sop_test")
    # original release: list files at the root, paths relative to it
    flat = tmp_path / "sop_flat"
    flat.mkdir()
    (flat / "Ebay_test.txt").write_text("image_id class_id super_class_id path\n5 11319 1 a/b.JPG\n")
    assert load_sop(str(flat), "test", "sop_test")[0]["file_name"] == str(flat / "a" / "b.JPG")


def test_inshop_partition(tmp_path):
    root = tmp_path / "in-shop"
    (root / "Eval").mkdir(parents=True)
    (root / "Eval" / "list_eval_partition.txt").write_text(
        "5\nimage_name item_id evaluation_status\n"
        "img/WOMEN/Dresses/id_00000002/02_1_front.jpg id_00000002 train\n"
        "img/WOMEN/Dresses/id_00000009/02_1_front.jpg id_00000009 query\n"
        "img/WOMEN/Dresses/id_00000009/02_2_side.jpg id_00000009 gallery\n"
        "img/MEN/Denim/id_00000080/01_1_front.jpg id_00000080 gallery\n"
        "img/WOMEN/Dresses/id_00000003/01_1_front.jpg id_00000003 train\n"
    )
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
