#!/usr/bin/env python
"""Embed images with a trained AdaSP run and, with ``--gallery``, rank a gallery for every input image.

    python projects/AdaSP/predict.py --run OUTPUT_DIR --input QUERY_IMAGES [--gallery GALLERY_IMAGES] \
        [--output DIR] [--checkpoint NAME] [--top-k 10] [--sheet-queries 8]

Writes under ``--output`` (default ``OUTPUT_DIR/predictions``): ``embeddings.npy`` (float32 [N, D]) and
``ids.txt`` (N lines); with ``--gallery``: ``gallery_embeddings.npy``, ``gallery_ids.txt``, ``ranking.csv``
(``query_id,rank,gallery_id,score,label_match``) and ``retrieval.png`` (shared.retrieval.export).
"""
import sys

import adasp  # noqa: F401  (compat layer first; registers the project's components)
from shared.retrieval.export import embedding_predict_main


def main(argv=None) -> int:
    return embedding_predict_main(argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
