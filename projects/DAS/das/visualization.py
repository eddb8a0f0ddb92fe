"""Top-k retrieval grid (as in the paper's qualitative figures): one row per query, the query in a blue frame
followed by its k nearest gallery images, framed green when they share the query's class and red otherwise."""
from __future__ import annotations

import os
from typing import List, Optional, Sequence

import cv2
import numpy as np

from shared.retrieval.knn import knn_search

QUERY_BGR = (200, 120, 0)
CORRECT_BGR = (40, 170, 40)
WRONG_BGR = (30, 30, 220)


def framed_thumbnail(path: str, size: int, color: Sequence[int], border: int) -> np.ndarray:
    """The image at ``path``, resized to ``size``×``size``, in a ``border``-pixel frame of BGR ``color``."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path!r}")
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_CONSTANT, value=tuple(color))


def retrieval_grid(query_files: Sequence[str], query_labels: np.ndarray, gallery_files: Sequence[str],
                   gallery_labels: np.ndarray, neighbours: np.ndarray, thumb: int = 96, border: int = 5,
                   gap: int = 4) -> np.ndarray:
    """BGR grid: row i = query i, then ``gallery[neighbours[i, j]]`` for j = 0..k−1 in correctness frames."""
    rows: List[np.ndarray] = []
    cell = thumb + 2 * border
    spacer = np.full((cell, gap, 3), 255, np.uint8)
    for i, qfile in enumerate(query_files):
        cells = [
            framed_thumbnail(qfile, thumb, QUERY_BGR, border),
            np.full((cell, 4 * gap, 3), 255, np.uint8),
        ]
        for j in neighbours[i]:
            color = CORRECT_BGR if gallery_labels[j] == query_labels[i] else WRONG_BGR
            cells += [framed_thumbnail(gallery_files[j], thumb, color, border), spacer]
        rows.append(np.hstack(cells[:-1]))
        rows.append(np.full((gap, rows[-1].shape[1], 3), 255, np.uint8))
    return np.vstack(rows[:-1])


def save_retrieval_grid(query, gallery, path: str, num_queries: int = 8, top_k: int = 5, seed: int = 0,
                        query_indices: Optional[Sequence[int]] = None) -> np.ndarray:
    """Pick ``num_queries`` queries (seeded) of an ``EmbeddedSet``, retrieve their top-k by L2 distance in
    ``gallery`` (or in the query set itself, self excluded, when ``gallery`` is None), save the grid PNG at
    ``path`` and return the neighbour indices [num_queries, top_k]."""
    if query_indices is None:
        rng = np.random.default_rng(seed)
        count = min(num_queries, len(query.file_names))
        query_indices = np.sort(rng.choice(len(query.file_names), size=count, replace=False))
    query_indices = np.asarray(query_indices)
    selected = query.embeddings[query_indices]
    if gallery is None:  # leave-one-out: search k + 1 and drop the query itself (or the last one)
        _, nn = knn_search(selected, query.embeddings, top_k + 1, metric="l2")
        nn = np.stack([np.array([j for j in row if j != q][:top_k]) for row, q in zip(nn, query_indices)])
        gallery = query
    else:
        _, nn = knn_search(selected, gallery.embeddings, top_k, metric="l2")
    grid = retrieval_grid([query.file_names[i] for i in query_indices], query.labels[query_indices],
                          gallery.file_names, gallery.labels, nn)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, grid):
        raise OSError(f"could not write {path!r}")
    return nn
