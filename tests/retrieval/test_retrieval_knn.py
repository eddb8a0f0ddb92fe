"""faiss k-NN back end: exactness against brute force, self-exclusion, chunking, factory indexes,
bad input."""
import numpy as np
import pytest

from shared.retrieval.knn import build_index, knn_search, l2_normalize


def _data(n=300, m=120, d=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, d)).astype(np.float32), rng.normal(size=(n, d)).astype(np.float32)


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_knn_matches_brute_force(metric):
    q, db = _data()
    scores, idx = knn_search(q, db, 7, metric=metric, chunk_size=50)
    if metric == "cosine":
        full = l2_normalize(q) @ l2_normalize(db).T
    elif metric == "ip":
        full = q @ db.T
    else:
        full = ((q[:, None, :] - db[None, :, :]) ** 2).sum(-1)
    order = np.argsort(full if metric == "l2" else -full, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(idx, order)
    np.testing.assert_allclose(scores, np.take_along_axis(full, order, 1), rtol=1e-4, atol=1e-4)


def test_exclude_self_drops_own_index_and_chunking_is_invisible():
    _, db = _data(n=200)
    s1, i1 = knn_search(db, db, 5, metric="l2", exclude_self=True, chunk_size=17)
    s2, i2 = knn_search(db, db, 5, metric="l2", exclude_self=True, chunk_size=10_000)
    assert not (i1 == np.arange(200)[:, None]).any()
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(s1, s2)
    full = ((db[:, None, :] - db[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(full, np.inf)
    np.testing.assert_array_equal(i1, np.argsort(full, axis=1)[:, :5])


def test_exclude_self_with_exact_duplicates_keeps_k_columns():
    x = np.repeat(np.eye(4, dtype=np.float32), 2, axis=0)  # every vector twice
    _, idx = knn_search(x, x, 1, metric="l2", exclude_self=True)
    assert idx.shape == (8, 1)
    np.testing.assert_array_equal(idx[:, 0], np.arange(8) ^ 1)  # the twin, never itself


def test_factory_indexes_ivf_and_pcaw():
    q, db = _data(n=2000, m=50, d=32)
    _, exact = knn_search(q, db, 10, metric="l2")
    _, approx = knn_search(q, db, 10, metric="l2", index_key="IVF16,Flat", train_vectors=db, nprobe=16)
    np.testing.assert_array_equal(exact, approx)  # nprobe = nlist visits every cell: exact
    index = build_index(32, "ip", "PCAW16,L2norm,Flat", train_vectors=db)
    assert index.is_trained and index.d == 32


def test_knn_bad_input():
    q, db = _data()
    with pytest.raises(ValueError, match="larger than the searchable database"):
        knn_search(q, db[:5], 6)
    with pytest.raises(ValueError, match="after excluding the query itself"):
        knn_search(db[:5], db[:5], 5, exclude_self=True)
    bad = q.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        knn_search(bad, db, 3)
    with pytest.raises(ValueError, match="empty"):
        knn_search(q[:0], db, 3)
    with pytest.raises(ValueError, match="dimension"):
        knn_search(q[:, :5], db, 3)
    with pytest.raises(ValueError, match="unknown metric"):
        knn_search(q, db, 3, metric="hamming")
    with pytest.raises(ValueError, match="must be trained"):
        knn_search(q, db, 3, index_key="IVF8,Flat")
    with pytest.raises(ValueError, match="query set itself"):
        knn_search(q, db, 3, exclude_self=True)
