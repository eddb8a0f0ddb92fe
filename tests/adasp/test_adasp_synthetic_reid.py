"""The synthetic Market-1501-format generator, read by fastreid's own Market1501 loader; P x K sampling."""
import collections
import os
import re

import numpy as np
import pytest

import adasp  # noqa: F401
from fastreid.data.datasets import Market1501
from fastreid.data.samplers import BalancedIdentitySampler, NaiveIdentitySampler
from shared.datasets.synthetic_reid import (MARKET_DIR_NAME, SyntheticReIDSpec, generate_synthetic_market1501,
                                            market_file_name)

SMALL = SyntheticReIDSpec(num_train_ids=6, num_test_ids=5, num_distractors=3, num_junk=2, seed=3)
NAME_PATTERN = re.compile(r"^(-1|\d{4})_c([1-6])s(\d)_(\d{6})_(\d{2})\.jpg$")


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic_reid"))
    return root, generate_synthetic_market1501(root, SMALL)


def test_market_file_name_scheme():
    assert market_file_name(1, 1, 1, 151, 1) == "0001_c1s1_000151_01.jpg"
    assert market_file_name(-1, 3, 2, 44, 0) == "-1_c3s2_000044_00.jpg"


def test_layout_and_file_names(small_set):
    root, summary = small_set
    data_dir = os.path.join(root, MARKET_DIR_NAME)
    assert summary["dataset_dir"] == data_dir
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        names = [n for n in os.listdir(os.path.join(data_dir, split)) if n.endswith(".jpg")]
        assert len(names) == summary["num_images"][split] > 0
        assert all(NAME_PATTERN.match(n) for n in names), names[:5]


def test_fastreid_market1501_loader_reads_it_unchanged(small_set):
    root, summary = small_set
    data = Market1501(root=root)
    train_pids = {pid for _, pid, _ in data.train}
    assert len(train_pids) == SMALL.num_train_ids
    assert all(pid.startswith("market1501_") for pid in train_pids)  # fastreid's training-time prefix
    query_pids = {pid for _, pid, _ in data.query}
    gallery_pids = {pid for _, pid, _ in data.gallery}
    assert len(query_pids) == SMALL.num_test_ids
    assert 0 in gallery_pids  # distractors are kept
    assert -1 not in gallery_pids  # junk dropped by the loader
    assert len(data.gallery) == summary["num_images"]["bounding_box_test"] - SMALL.num_junk
    assert {int(p.split("_")[1]) for p in train_pids}.isdisjoint(query_pids)
    assert {cam for _, _, cam in data.query} <= set(range(6))  # cameras 1..6 became 0..5


def test_every_query_has_a_cross_camera_match(small_set):
    root, _ = small_set
    data = Market1501(root=root)
    gallery = collections.defaultdict(set)
    for _, pid, cam in data.gallery:
        gallery[pid].add(cam)
    for _, pid, cam in data.query:
        assert gallery[pid] - {cam}, f"query pid {pid} cam {cam} has no match in another camera"


def test_deterministic_and_cached(tmp_path, small_set):
    root, summary = small_set
    again = generate_synthetic_market1501(str(tmp_path), SMALL)
    first = os.path.join(summary["bounding_box_train_dir"])
    second = again["bounding_box_train_dir"]
    assert sorted(os.listdir(first)) == sorted(os.listdir(second))
    name = sorted(os.listdir(first))[0]
    with open(os.path.join(first, name), "rb") as a, open(os.path.join(second, name), "rb") as b:
        assert a.read() == b.read()
    stamp = os.path.getmtime(os.path.join(second, name))
    generate_synthetic_market1501(str(tmp_path), SMALL)  # same spec: no rewrite
    assert os.path.getmtime(os.path.join(second, name)) == stamp


def test_identities_are_distinguishable(small_set):
    """An identity's images are closer to its mean colour than the identities' means are to each other."""
    import cv2

    root, _ = small_set
    data = Market1501(root=root)
    feats = collections.defaultdict(list)
    for path, pid, _ in data.train:
        image = cv2.imread(path).astype(np.float32)
        torso = image[30:90].mean(axis=(0, 1)) / (image.mean(axis=(0, 1)) + 1.0)  # lighting-normalised
        feats[pid].append(torso)
    centres = {pid: np.mean(v, axis=0) for pid, v in feats.items()}
    within = np.mean([np.linalg.norm(f - centres[pid]) for pid, v in feats.items() for f in v])
    between = np.mean([np.linalg.norm(a - b) for p, a in centres.items()
                       for q, b in centres.items() if p != q])
    assert within < between


def test_refuses_to_overwrite_foreign_folder(tmp_path):
    real = tmp_path / MARKET_DIR_NAME
    real.mkdir()
    (real / "readme.txt").write_text("the real Market-1501")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        generate_synthetic_market1501(str(tmp_path), SMALL)


def test_spec_validation():
    with pytest.raises(ValueError, match="num_cameras"):
        SyntheticReIDSpec(num_cameras=7)
    with pytest.raises(ValueError, match="images_per_camera"):
        SyntheticReIDSpec(images_per_camera=(1, 3))


@pytest.mark.parametrize("sampler_cls", [BalancedIdentitySampler, NaiveIdentitySampler])
def test_identity_samplers_form_p_by_k_batches(small_set, sampler_cls):
    """fastreid#116: a batch of IMS_PER_BATCH = P x K holds P identities with K images each."""
    root, _ = small_set
    items = Market1501(root=root).train
    batch_size, num_instances = 12, 4
    sampler = sampler_cls(items, batch_size, num_instances, seed=0)
    indices = iter(sampler)
    for _ in range(5):
        batch = [next(indices) for _ in range(batch_size)]
        counts = collections.Counter(items[i][1] for i in batch)
        assert len(counts) == batch_size // num_instances
        assert set(counts.values()) == {num_instances}
