"""IIF weights: the official CSV's values for aerosol_can, every variant, degenerate counts and every count
source."""
import math

import iif  # noqa: F401  (compat layer first)
import numpy as np
import pytest
import torch
from scipy.stats import norm

from iif.weights import (
    ClassCounts,
    compute_iif_weights,
    counts_from_dataset_dicts,
    counts_from_lvis_json,
    iif_weight_vector,
    parse_variant,
    valid_variant_names,
    weights_from_csv,
)

N_LVIS, N_OBJ_LVIS = 100_170, 1_270_141

# Official IIF repository, instance_segmentation/lvis_files/idf_1204.csv line 3 (class 1, aerosol_can:
# img_freq 64, instance_freq 109), rounded to 4 decimals.
OFFICIAL_AEROSOL_CAN = {
    "raw": 7.3557, "smooth": 8.3402, "rel": 7.3551, "normit": 3.2209,
    "gombit": 7.3554, "base2": 10.6121, "base10": 3.1946,
}


@pytest.mark.parametrize("variant,expected", sorted(OFFICIAL_AEROSOL_CAN.items()))
def test_official_csv_aerosol_can(variant, expected):
    assert compute_iif_weights([64], N_LVIS, variant)[0] == pytest.approx(expected, abs=5e-5)


def test_official_csv_aerosol_can_base10_obj_and_prob_alias():
    counts = ClassCounts(np.array([64]), N_LVIS, np.array([109]), N_OBJ_LVIS)
    w = iif_weight_vector(counts, "base10_obj")
    assert w.shape == (2,) and w.dtype == torch.float32
    assert w[0].item() == pytest.approx(4.0664, abs=5e-5)
    assert w[1].item() == 1.0  # background last
    assert iif_weight_vector(counts, "prob")[0].item() == pytest.approx(7.3551, abs=5e-5)


def test_variants_match_their_formulas_hand_computed():
    n, total = np.array([1.0, 10.0, 500.0, 999.0]), 1000.0
    p = n / total
    expected = {
        "raw": np.log(total / n),
        "smooth": np.log((total + 1) / (n + 1)) + 1,
        "rel": np.log((total - n) / n),
        "normit": -norm.ppf(p),
        "gombit": -np.log(-np.log(1 - p)),
        "base2": np.log2(total / n),
        "base10": np.log10(total / n),
    }
    for variant, ref in expected.items():
        np.testing.assert_allclose(compute_iif_weights(n, total, variant), ref, rtol=1e-12)
    # rarer class -> larger weight, for every variant
    for variant in expected:
        assert np.all(np.diff(compute_iif_weights(n, total, variant)) < 0)


@pytest.mark.parametrize("variant", ["raw", "smooth", "rel", "normit", "gombit", "base2", "base10"])
def test_zero_count_class_gets_the_weight_of_a_single_image(variant):
    w = compute_iif_weights([0, 1, 5], 100, variant)
    assert np.all(np.isfinite(w))
    assert w[0] == w[1]  # documented rule: n_c = 0 is treated as n_c = 1


@pytest.mark.parametrize("variant", ["rel", "normit", "gombit"])
def test_class_in_every_image_stays_finite_for_singular_variants(variant):
    w = compute_iif_weights([100, 3], 100, variant)
    assert np.all(np.isfinite(w))
    np.testing.assert_allclose(w[0], compute_iif_weights([99.5], 100, variant)[0])


def test_class_in_every_image_raw_is_zero():
    assert compute_iif_weights([100], 100, "raw")[0] == 0.0
    assert compute_iif_weights([100], 100, "smooth")[0] == pytest.approx(1.0)


def test_bad_counts_raise():
    with pytest.raises(ValueError, match="n_c=101 > N=100"):
        compute_iif_weights([101, 1], 100, "raw")
    with pytest.raises(ValueError, match=">= 0"):
        compute_iif_weights([-1], 100, "raw")
    with pytest.raises(ValueError, match=">= 0"):
        compute_iif_weights([float("nan")], 100, "raw")
    with pytest.raises(ValueError, match="N >= 1"):
        compute_iif_weights([0], 0, "raw")


def test_unknown_variant_lists_valid_names():
    with pytest.raises(KeyError, match="log_adj.*choose one of.*base10_obj"):
        parse_variant("log_adj")
    assert parse_variant("BASE10_obj") == ("base10", True)
    assert set(OFFICIAL_AEROSOL_CAN) <= set(valid_variant_names())


def test_obj_variant_without_instance_counts_raises():
    with pytest.raises(ValueError, match="instance counts"):
        iif_weight_vector(ClassCounts(np.array([3, 4]), 10, source="x"), "raw_obj")


def test_norm_p_and_background_weight():
    counts = ClassCounts(np.array([1, 10, 100]), 1000)
    w = iif_weight_vector(counts, "raw", norm_p=2.0, bg_weight=0.5)
    assert torch.linalg.vector_norm(w[:-1], 2).item() == pytest.approx(1.0, abs=1e-6)
    assert w[-1].item() == 0.5
    with pytest.raises(ValueError, match="NORM_P"):
        iif_weight_vector(counts, "raw", norm_p=-1)


def _lvis_dict(with_counts=True):
    cats = [{"id": 2, "name": "b", "image_count": 2, "instance_count": 5, "frequency": "r"},
            {"id": 1, "name": "a", "image_count": 3, "instance_count": 3, "frequency": "r"}]
    if not with_counts:
        for c in cats:
            c.pop("image_count")
    return {"images": [{"id": i} for i in range(4)], "annotations": [], "categories": cats}


def test_counts_from_lvis_json_orders_by_id():
    counts = counts_from_lvis_json(_lvis_dict())
    np.testing.assert_array_equal(counts.image_counts, [3, 2])
    np.testing.assert_array_equal(counts.instance_counts, [3, 5])
    assert counts.num_images == 4 and counts.num_instances == 8


def test_lvis_json_without_counts_points_to_dicts_source():
    with pytest.raises(ValueError, match="no 'image_count'.*COUNT_SOURCE 'dicts'"):
        counts_from_lvis_json(_lvis_dict(with_counts=False))


def test_malformed_json_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="malformed LVIS json"):
        counts_from_lvis_json(str(path))


def test_counts_from_dataset_dicts_hand_counted():
    dicts = [
        {"image_id": 1, "annotations": [{"category_id": 0}, {"category_id": 0}, {"category_id": 2}]},
        {"image_id": 2, "annotations": [{"category_id": 2}]},
        {"image_id": 3, "annotations": []},
    ]
    counts = counts_from_dataset_dicts(dicts, num_classes=3)
    np.testing.assert_array_equal(counts.image_counts, [1, 0, 2])
    np.testing.assert_array_equal(counts.instance_counts, [2, 0, 2])
    assert counts.num_images == 3 and counts.num_instances == 4
    w = iif_weight_vector(counts, "raw")
    np.testing.assert_allclose(w.numpy(), [math.log(3), math.log(3), math.log(1.5), 1.0], rtol=1e-6)
    with pytest.raises(ValueError, match="outside \\[0, 2\\)"):
        counts_from_dataset_dicts(dicts, num_classes=2)
    with pytest.raises(ValueError, match="no images"):
        counts_from_dataset_dicts([], num_classes=2)


def test_weights_from_csv_by_column_name(tmp_path):
    path = tmp_path / "idf.csv"
    # official layout: a placeholder row first, columns in any order
    path.write_text("name,prob,raw,base10_obj\nplaceholder,0,0,0\na,1.5,2.5,3.5\nb,4.5,5.5,6.5\n")
    np.testing.assert_allclose(weights_from_csv(str(path), "raw", 2).numpy(), [2.5, 5.5, 1.0])
    np.testing.assert_allclose(weights_from_csv(str(path), "rel", 2).numpy(), [1.5, 4.5, 1.0])
    np.testing.assert_allclose(weights_from_csv(str(path), "base10_obj", 2).numpy(), [3.5, 6.5, 1.0])
    with pytest.raises(KeyError, match="no column for variant 'gombit'"):
        weights_from_csv(str(path), "gombit", 2)
    with pytest.raises(ValueError, match="3 data rows; expected 5"):
        weights_from_csv(str(path), "raw", 5)
    path.write_text("raw\nx\ny\n")
    with pytest.raises(ValueError, match="non-numeric"):
        weights_from_csv(str(path), "raw", 2)
