"""Retrieval results written to disk, the same way by every retrieval project (AdaSP, DAS) and their
``predict.py``: embeddings with their ids, a ranking CSV and a labelled retrieval sheet.

Files (``folder`` is e.g. ``OUTPUT_DIR/inference/<dataset>/`` or ``predict.py``'s ``--output``):

* ``<prefix>embeddings.npy``: float32 [N, D], row i = the image on line i of ``<prefix>ids.txt``;
* ``<prefix>ids.txt``: one id per line (an image's path relative to the inputs' common folder, or a dataset
  file name);
* ``ranking.csv``: header ``query_id,rank,gallery_id,score,label_match``; ``rank`` 1..k, ``score`` the
  cosine similarity (higher = closer) or the L2 distance (lower = closer) written at full precision,
  ``label_match`` 1/0 when labels are known, else empty;
* ``retrieval.png``: one row per query (blue frame) and its top-k gallery images, each captioned with its
  rank and id; green / red frames = same / other label, grey when labels are unknown; title and legend.
"""
from __future__ import annotations

import csv
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

from shared.retrieval.knn import knn_search

__all__ = ["EmbeddingExtractor", "embedding_predict_main", "rank_gallery", "save_retrieval_sheet",
           "write_embeddings", "write_ranking_csv"]

#: frame colours (RGB, 0-1) of the retrieval sheet
QUERY_COLOR = (0.0, 0.45, 0.8)
CORRECT_COLOR = (0.15, 0.65, 0.15)
WRONG_COLOR = (0.85, 0.1, 0.1)
UNKNOWN_COLOR = (0.55, 0.55, 0.55)


def write_embeddings(folder: str, ids: Sequence[str], embeddings: np.ndarray, prefix: str = "") -> List[str]:
    """``<prefix>embeddings.npy`` + ``<prefix>ids.txt`` in ``folder``; returns the two paths."""
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or len(embeddings) != len(ids):
        raise ValueError(f"embeddings of shape {embeddings.shape} do not match {len(ids)} ids")
    os.makedirs(folder, exist_ok=True)
    npy, txt = os.path.join(folder, f"{prefix}embeddings.npy"), os.path.join(folder, f"{prefix}ids.txt")
    np.save(npy, embeddings)
    with open(txt, "w") as f:
        f.writelines(f"{i}\n" for i in ids)
    return [npy, txt]


def rank_gallery(queries: np.ndarray, gallery: np.ndarray, k: int, metric: str = "cosine",
                 exclude_self: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """``(scores [nq, k], indices [nq, k])`` of the k nearest gallery rows, best first: cosine similarity
    (``metric="cosine"``) or L2 distance ``||q - g||`` (``"l2"``; the square root of faiss' squared one).
    ``k`` is capped at the gallery size (minus one with ``exclude_self``)."""
    k = min(int(k), len(gallery) - (1 if exclude_self else 0))
    if k < 1:
        raise ValueError(f"the gallery has {len(gallery)} images: nothing to rank")
    if metric == "cosine":
        return knn_search(queries, gallery, k, metric="cosine", exclude_self=exclude_self)
    if metric == "l2":
        dist, idx = knn_search(queries, gallery, k, metric="l2", exclude_self=exclude_self)
        return np.sqrt(np.maximum(dist, 0.0)), idx
    raise ValueError(f"metric must be 'cosine' or 'l2', got {metric!r}")


def write_ranking_csv(path: str, query_ids: Sequence[str], gallery_ids: Sequence[str], indices: np.ndarray,
                      scores: np.ndarray, query_labels: Optional[Sequence] = None,
                      gallery_labels: Optional[Sequence] = None) -> str:
    """The ranking CSV of the module docstring; returns ``path``."""
    labelled = query_labels is not None and gallery_labels is not None
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["query_id", "rank", "gallery_id", "score", "label_match"])
        for i, qid in enumerate(query_ids):
            for rank, (j, s) in enumerate(zip(indices[i], scores[i]), start=1):
                match = int(query_labels[i] == gallery_labels[j]) if labelled else ""
                writer.writerow([qid, rank, gallery_ids[j], repr(float(s)), match])
    return path


def _thumbnail(path: str, size: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB").resize((size, size)))
    except OSError as e:
        raise OSError(f"cannot read image {path!r}: {e}") from e


def save_retrieval_sheet(path: str, query_files: Sequence[str], gallery_files: Sequence[str],
                         neighbours: np.ndarray, query_ids: Optional[Sequence[str]] = None,
                         gallery_ids: Optional[Sequence[str]] = None, query_labels: Optional[Sequence] = None,
                         gallery_labels: Optional[Sequence] = None, scores: Optional[np.ndarray] = None,
                         title: str = "retrieval", thumb: int = 96, score_name: str = "s") -> str:
    """The labelled retrieval sheet of the module docstring (PNG at ``path``); returns ``path``.

    Captions: the query's id (and label); each result ``#rank id`` (+ its label and ``score_name=score`` when
    scores are given: ``"s"`` for a similarity, ``"d"`` for a distance)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    query_ids = list(query_ids) if query_ids is not None else [os.path.basename(p) for p in query_files]
    if gallery_ids is None:
        gallery_ids = [os.path.basename(p) for p in gallery_files]
    labelled = query_labels is not None and gallery_labels is not None
    rows, k = len(query_files), int(neighbours.shape[1]) if len(query_files) else 0
    if rows == 0 or k == 0:
        raise ValueError("a retrieval sheet needs at least one query and one result")
    fig, axes = plt.subplots(rows, k + 1, figsize=(1.45 * (k + 1), 1.75 * rows + 0.9), squeeze=False)

    def show(ax, file, color, caption):
        ax.imshow(_thumbnail(file, thumb))
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor(color)
            spine.set_linewidth(4)
        ax.set_title(caption, fontsize=6)

    for i in range(rows):
        label = f"\nlabel {query_labels[i]}" if labelled else ""
        show(axes[i, 0], query_files[i], QUERY_COLOR, f"query\n{_short(query_ids[i])}{label}")
        for r, j in enumerate(neighbours[i]):
            color = UNKNOWN_COLOR
            if labelled:
                color = CORRECT_COLOR if gallery_labels[j] == query_labels[i] else WRONG_COLOR
            extra = f"\nlabel {gallery_labels[j]}" if labelled else ""
            if scores is not None:
                extra += f"{' ' if labelled else chr(10)}{score_name}={float(scores[i][r]):.3f}"
            show(axes[i, r + 1], gallery_files[j], color, f"#{r + 1} {_short(gallery_ids[j])}{extra}")
    handles = [Patch(facecolor="white", edgecolor=QUERY_COLOR, linewidth=3, label="query")]
    if labelled:
        handles += [Patch(facecolor="white", edgecolor=color, linewidth=3, label=text)
                    for color, text in ((CORRECT_COLOR, "correct (same label)"),
                                        (WRONG_COLOR, "incorrect (other label)"))]
    else:
        handles.append(Patch(facecolor="white", edgecolor=UNKNOWN_COLOR, linewidth=3,
                             label="result (labels unknown)"))
    fig.suptitle(f"{title}: top-{k} results per query, rank 1 first", fontsize=9)
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _short(text: str, width: int = 18) -> str:
    """``text`` cut to ``width`` characters from the end (file names differ at their end)."""
    text = str(text)
    return text if len(text) <= width else "…" + text[-(width - 1):]


class EmbeddingExtractor:
    """A trained model as a function from image files to embeddings, as a project's run loader returns it.

    A project sets ``cfg``, ``model`` (eval mode, on its device), ``metric`` (``"cosine"`` or ``"l2"``: how
    its evaluation compares embeddings), ``input_size`` ((height, width) after the test transform) and
    implements :meth:`forward` (a batch -> [B, D] embeddings, exactly the trainer's evaluation forward);
    :meth:`load` (one file -> the test-transformed CHW tensor) applies ``transform`` to the RGB image unless
    the project reads images its own way.
    """

    cfg = None
    model = None
    transform = None
    metric = "cosine"
    input_size: Tuple[int, int] = (0, 0)
    batch_size = 32

    def load(self, path: str):
        from PIL import Image

        try:
            with Image.open(path) as image:
                return self.transform(image.convert("RGB"))
        except (OSError, ValueError) as e:
            raise OSError(f"cannot read image {path!r}: {e}") from e

    def forward(self, images):
        raise NotImplementedError

    def embed_files(self, paths: Sequence[str], label: str = "embed") -> np.ndarray:
        """float32 [len(paths), D], row i = ``paths[i]``; a progress line with ETA on stderr. A non-finite
        embedding is a ``FloatingPointError`` naming the first such file."""
        import torch

        from shared.engine.predict import Progress

        starts = range(0, len(paths), self.batch_size)
        chunks = []
        with torch.no_grad():
            for start in Progress(starts, label, total=len(starts), unit="batches"):
                batch = torch.stack([self.load(p) for p in paths[start:start + self.batch_size]])
                chunks.append(self.forward(batch).float().cpu().numpy())
        out = np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)
        bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
        if len(bad):
            raise FloatingPointError(f"non-finite embedding for {paths[bad[0]]!r} ({len(bad)} images)")
        return out.astype(np.float32)


def embedding_predict_main(argv: Optional[Sequence[str]] = None, description: str = "") -> int:
    """The ``predict.py`` of an embedding project (AdaSP, DAS). Under ``--output`` (default
    ``OUTPUT_DIR/predictions``): ``embeddings.npy`` + ``ids.txt`` of ``--input``; with ``--gallery`` also
    ``gallery_embeddings.npy`` + ``gallery_ids.txt``, ``ranking.csv`` (top ``--top-k`` per query) and
    ``retrieval.png`` (the first ``--sheet-queries`` queries). Ids are paths relative to the common folder of
    their images. Returns the exit code."""
    from shared.engine.predict import expand_inputs, output_names, predict_argument_parser
    from shared.engine.run import load_run

    parser = predict_argument_parser(description, gallery=True)
    parser.add_argument("--top-k", type=int, default=10, help="gallery images ranked per query")
    parser.add_argument("--sheet-queries", type=int, default=8, help="queries drawn in retrieval.png")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error(f"--top-k must be >= 1, got {args.top_k}")
    queries = expand_inputs(args.input)
    gallery = expand_inputs(args.gallery, flag="--gallery") if args.gallery else []
    extractor = load_run(args.run, checkpoint=args.checkpoint, device=args.device)
    output = args.output or os.path.join(args.run, "predictions")
    query_ids = output_names(queries)
    q = extractor.embed_files(queries, "embed --input")
    written = write_embeddings(output, query_ids, q)
    if gallery:
        gallery_ids = output_names(gallery)
        g = extractor.embed_files(gallery, "embed --gallery")
        written += write_embeddings(output, gallery_ids, g, prefix="gallery_")
        scores, indices = rank_gallery(q, g, args.top_k, extractor.metric)
        written.append(write_ranking_csv(os.path.join(output, "ranking.csv"), query_ids, gallery_ids, indices,
                                         scores))
        shown = max(0, min(args.sheet_queries, len(queries)))
        if shown:
            written.append(save_retrieval_sheet(
                os.path.join(output, "retrieval.png"), queries[:shown], gallery, indices[:shown],
                query_ids[:shown], gallery_ids, scores=scores[:shown],
                title=f"{os.path.basename(os.path.abspath(args.run))} ({extractor.metric})",
                score_name="d" if extractor.metric == "l2" else "s"))
    print(f"{len(queries)} inputs ({q.shape[1]}-d), {len(gallery)} gallery images -> "
          + ", ".join(os.path.relpath(w, output) for w in written) + f" in {output}")
    return 0
