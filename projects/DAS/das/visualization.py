"""Top-k retrieval sheet (as in the paper's qualitative figures), drawn by
:func:`shared.retrieval.export.save_retrieval_sheet`: a title, one row per query (blue frame) followed by its
k nearest gallery images, each captioned with its rank, file name and class label, framed green when it
shares the query's class and red otherwise, and a legend."""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from shared.retrieval.export import rank_gallery, save_retrieval_sheet

__all__ = ["save_retrieval_grid"]


def save_retrieval_grid(query, gallery, path: str, num_queries: int = 8, top_k: int = 5, seed: int = 0,
                        query_indices: Optional[Sequence[int]] = None,
                        title: str = "retrieval") -> np.ndarray:
    """Pick ``num_queries`` queries (seeded) of an ``EmbeddedSet``, retrieve their top-k by L2 distance in
    ``gallery`` (or in the query set itself, self excluded, when ``gallery`` is None), save the sheet PNG at
    ``path`` and return the neighbour indices [num_queries, top_k]."""
    if query_indices is None:
        rng = np.random.default_rng(seed)
        count = min(num_queries, len(query.file_names))
        query_indices = np.sort(rng.choice(len(query.file_names), size=count, replace=False))
    query_indices = np.asarray(query_indices)
    selected = query.embeddings[query_indices]
    if gallery is None:  # leave-one-out: search k + 1 and drop the query itself (or the last one)
        dist, nn = rank_gallery(selected, query.embeddings, top_k + 1, "l2")
        keep = [[c for c, j in enumerate(row) if j != q][:top_k] for row, q in zip(nn, query_indices)]
        nn = np.stack([row[k] for row, k in zip(nn, keep)])
        dist = np.stack([row[k] for row, k in zip(dist, keep)])
        gallery = query
    else:
        dist, nn = rank_gallery(selected, gallery.embeddings, top_k, "l2")
    save_retrieval_sheet(path, [query.file_names[i] for i in query_indices], gallery.file_names, nn,
                         [os.path.basename(query.file_names[i]) for i in query_indices],
                         [os.path.basename(f) for f in gallery.file_names], query.labels[query_indices],
                         gallery.labels, scores=dist, title=title, score_name="d")
    return nn
