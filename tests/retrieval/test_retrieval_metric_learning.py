"""Metric-learning metrics: parity with pytorch-metric-learning's AccuracyCalculator (precision_at_1 = R@1,
MAP@R, R-precision, NMI with the same faiss k-means seed), brute-force Recall@K / pair F1, the Roth/DAS mAP_c
loop, the In-Shop query->gallery protocol and bad input."""
import itertools

import numpy as np
import pytest
import torch

import shared  # noqa: F401
from shared.retrieval.metric_learning import (
    evaluate_embeddings,
    evaluate_query_gallery,
    kmeans_cluster,
    pair_f1_score,
)

from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator  # noqa: E402
from pytorch_metric_learning.utils.inference import FaissKMeans  # noqa: E402


def _embeddings(seed=0, n=500, d=16, classes=25, noise=1.3):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n // classes)  # every class has n / classes >= 2 members
    rng.shuffle(labels)
    centres = rng.normal(size=(classes, d))
    return (centres[labels] + noise * rng.normal(size=(len(labels), d))).astype(np.float32), labels


def _pml(seed_kmeans=1234):
    return AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r", "r_precision", "NMI"),
                              k="max_bin_count", device=torch.device("cpu"),
                              kmeans_func=FaissKMeans(niter=20, seed=seed_kmeans))


@pytest.mark.parametrize("seed", [0, 1])
def test_parity_with_pml_accuracy_calculator(seed):
    x, y = _embeddings(seed)
    ours = evaluate_embeddings(x, y, recall_ks=(1, 2, 4, 8), seed=77)
    theirs = _pml(77).get_accuracy(x, y)
    assert ours.recall_at_k[1] == pytest.approx(theirs["precision_at_1"] * 100, abs=1e-9)
    assert ours.map_at_r == pytest.approx(theirs["mean_average_precision_at_r"] * 100, abs=1e-9)
    assert ours.r_precision == pytest.approx(theirs["r_precision"] * 100, abs=1e-9)
    assert ours.nmi == pytest.approx(theirs["NMI"] * 100, abs=1e-9)


def test_recall_at_k_and_map_c_against_brute_force():
    x, y = _embeddings(3, n=240, classes=12)
    res = evaluate_embeddings(x, y, recall_ks=(1, 2, 4, 8), compute_map_c=True, compute_nmi=False)
    dist = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    nn = np.argsort(dist, axis=1, kind="stable")
    for k in (1, 2, 4, 8):
        hit = (y[nn[:, :k]] == y[:, None]).any(axis=1)
        assert res.recall_at_k[k] == pytest.approx(hit.mean() * 100)
    # Roth/DAS mAP_c: R = class size including the query, first R neighbours after the query, divided by R
    aps = []
    for i in range(len(y)):
        freq = int((y == y[i]).sum())
        occ = y[nn[i, :freq]] == y[i]
        aps.append(np.sum(np.cumsum(occ) * occ / np.arange(1, freq + 1)) / freq)
    assert res.map_c == pytest.approx(np.mean(aps) * 100, abs=1e-9)
    assert res.map_c < res.map_at_r  # the two definitions differ on purpose


def test_pair_f1_brute_force_and_hand_example():
    # classes [a a a b b], clusters [0 0 1 1 1]: TP=1 (a,a in 0) + 1 (b,b in 1) = 2; same cluster pairs = 1 +
    # 3 = 4; same class pairs = 3 + 1 = 4 -> P = R = 0.5, F1 = 0.5
    assert pair_f1_score(np.array([0, 0, 0, 1, 1]), np.array([0, 0, 1, 1, 1])) == pytest.approx(50.0)
    rng = np.random.default_rng(0)
    labels, clusters = rng.integers(0, 5, 60), rng.integers(0, 7, 60)
    tp = fp = fn = 0
    for i, j in itertools.combinations(range(60), 2):
        same_c, same_l = clusters[i] == clusters[j], labels[i] == labels[j]
        tp += same_c and same_l
        fp += same_c and not same_l
        fn += same_l and not same_c
    p, r = tp / (tp + fp), tp / (tp + fn)
    assert pair_f1_score(labels, clusters) == pytest.approx(2 * p * r / (p + r) * 100)


def test_nmi_uses_seeded_faiss_kmeans_and_n_clusters():
    x, y = _embeddings(4)
    a = evaluate_embeddings(x, y, seed=5, compute_map_at_r=False)
    b = evaluate_embeddings(x, y, seed=5, compute_map_at_r=False)
    assert a.nmi == b.nmi and a.f1 == b.f1 and a.n_clusters == 25
    c = evaluate_embeddings(
        x, y, seed=5, n_clusters=30, compute_map_at_r=False
    )  # e.g. the training class count
    assert c.n_clusters == 30
    np.testing.assert_array_equal(kmeans_cluster(x, 25, seed=5), kmeans_cluster(x, 25, seed=5))


def test_kmeans_equals_faiss_default_without_its_console_warning(capfd):
    """The clusters of faiss' default parameters (PML's FaissKMeans), without faiss' stderr line about too few
    points per centroid (NMI always clusters into as many centroids as classes)."""
    import faiss

    x, _ = _embeddings(4)
    capfd.readouterr()
    ours = kmeans_cluster(x, 25, seed=5)
    assert "WARNING clustering" not in capfd.readouterr().err
    default = faiss.Kmeans(x.shape[1], 25, niter=20, seed=5)
    default.train(x)
    assert "WARNING clustering" in capfd.readouterr().err  # the line this avoids
    np.testing.assert_array_equal(ours, default.index.search(x, 1)[1][:, 0])


def test_perfect_embeddings_give_perfect_scores():
    y = np.repeat(np.arange(6), 5)
    x = np.eye(6, dtype=np.float32)[y] * 10
    res = evaluate_embeddings(x, y, recall_ks=(1, 2), compute_map_c=True)
    assert res.recall_at_k == {1: 100.0, 2: 100.0}
    assert (
        res.map_at_r == pytest.approx(100.0)
        and res.nmi == pytest.approx(100.0)
        and res.f1 == pytest.approx(100.0)
    )
    assert res.map_c == pytest.approx(4 / 5 * 100)  # at most (R-1)/R by definition


def test_lone_queries():
    x, y = _embeddings(5, n=100, classes=10)
    y = y.copy()
    y[0] = 999  # a class with a single sample
    kept = evaluate_embeddings(x, y, recall_ks=(1,), compute_nmi=False, compute_f1=False)
    dropped = evaluate_embeddings(x, y, recall_ks=(1,), compute_nmi=False, compute_f1=False,
                                  exclude_lone_queries=True)
    assert kept.num_queries == 100 and dropped.num_queries == 99
    assert dropped.recall_at_k[1] == pytest.approx(kept.recall_at_k[1] * 100 / 99)
    pml = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r"), k="max_bin_count",
                             device=torch.device("cpu")).get_accuracy(x, y)
    assert dropped.recall_at_k[1] == pytest.approx(pml["precision_at_1"] * 100)
    assert kept.map_at_r == pytest.approx(pml["mean_average_precision_at_r"] * 100)


def test_inshop_query_gallery_parity_with_pml():
    rng = np.random.default_rng(6)
    x, y = _embeddings(6, n=400, classes=40)
    is_query = rng.random(len(y)) < 0.4
    q, yq, g, yg = x[is_query], y[is_query], x[~is_query], y[~is_query]
    res = evaluate_query_gallery(q, yq, g, yg, recall_ks=(1, 10, 20))
    pml = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r"), k="max_bin_count",
                             device=torch.device("cpu")).get_accuracy(q, yq, g, yg, ref_includes_query=False)
    assert np.isin(yq, yg).all()  # every query label is in the gallery, so PML keeps every query too
    assert res.recall_at_k[1] == pytest.approx(pml["precision_at_1"] * 100, abs=1e-9)
    assert res.map_at_r == pytest.approx(pml["mean_average_precision_at_r"] * 100, abs=1e-9)
    dist = ((q[:, None, :] - g[None, :, :]) ** 2).sum(-1)
    nn = np.argsort(dist, axis=1)
    for k in (1, 10, 20):
        assert res.recall_at_k[k] == pytest.approx((yg[nn[:, :k]] == yq[:, None]).any(1).mean() * 100)


def test_metric_learning_bad_input():
    x, y = _embeddings(0, n=50, classes=5)
    with pytest.raises(ValueError, match="length"):
        evaluate_embeddings(x, y[:-1])
    with pytest.raises(ValueError, match="Recall@100"):
        evaluate_embeddings(x, y, recall_ks=(1, 100))
    bad = x.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        evaluate_embeddings(bad, y)
    with pytest.raises(ValueError, match="empty"):
        evaluate_embeddings(x[:0], y[:0])
    with pytest.raises(ValueError, match="MAP@R undefined"):
        evaluate_embeddings(x[:5], np.arange(5), recall_ks=(1,), compute_nmi=False, compute_f1=False)
    with pytest.raises(ValueError, match="n_clusters"):
        evaluate_embeddings(x, y, n_clusters=500)
    with pytest.raises(ValueError, match="gallery has"):
        evaluate_query_gallery(x[:10], y[:10], x[10:15], y[10:15], recall_ks=(1, 10))
