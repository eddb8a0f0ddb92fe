#!/usr/bin/env python
"""Copy-detection descriptors of any images with a trained RDCD / SSCD run and, with ``--references``, the
k nearest references of every input image as isc2021 predictions.

    python projects/RDCD/predict.py --run OUTPUT_DIR --input QUERY_IMAGES [--references REFERENCE_IMAGES] \
        [--output DIR] [--checkpoint NAME] [--k 10]

Writes under ``--output`` (default ``OUTPUT_DIR/predictions``), ids = image paths relative to their common
folder without the extension (``Q00001``):

* ``query_descriptors.h5`` (isc2021's per-set layout: ``vectors`` float32 [N, D], ``image_names``),
  ``query_descriptors.npy`` and ``query_ids.txt`` (same order);
* with ``--references``: the same three files for the references (``reference_*``), ``descriptors.h5`` in
  the ISC 2021 descriptor-track layout (``query``, ``reference``, ``query_ids``, ``reference_ids``, rows
  sorted by id; the file ``train_net.py`` exports) and ``predictions.csv`` (``query_id,reference_id,score``,
  the ``--k`` nearest references of every query by inner product, scores at full precision), which
  ``tools/evaluate_predictions.py`` and isc2021's ``compute_metrics.py`` read.
"""
import argparse
import os
import sys

import rdcd  # noqa: F401  (compat layer first; registers the RDCD / SSCD networks)
import numpy as np

from rdcd.evaluation import write_descriptors, write_predictions
from rdcd.predictor import image_ids, write_isc_descriptors
from shared.engine.predict import expand_inputs, output_names, predict_argument_parser
from shared.engine.run import load_run
from shared.retrieval.copy_detection import Predictions
from shared.retrieval.knn import knn_search


def write_set(output: str, part: str, ids, descriptors: np.ndarray) -> list:
    """``<part>_descriptors.h5`` / ``.npy`` and ``<part>_ids.txt`` in ``output``."""
    h5 = write_isc_descriptors(os.path.join(output, f"{part}_descriptors.h5"), ids, descriptors)
    npy = os.path.join(output, f"{part}_descriptors.npy")
    np.save(npy, descriptors.astype(np.float32))
    txt = os.path.join(output, f"{part}_ids.txt")
    with open(txt, "w") as f:
        f.writelines(f"{i}\n" for i in ids)
    return [h5, npy, txt]


def main(argv=None) -> int:
    parser = predict_argument_parser(__doc__, references=True)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--k", type=int, default=None,
                        help="references predicted per query (default: the run's TEST.COPY_DETECTION.K)")
    args = parser.parse_args(argv)
    queries = expand_inputs(args.input)
    references = expand_inputs(args.references, flag="--references") if args.references else []
    extractor = load_run(args.run, checkpoint=args.checkpoint, device=args.device)
    output = args.output or os.path.join(args.run, "predictions")
    os.makedirs(output, exist_ok=True)
    query_ids = image_ids(output_names(queries))
    q = extractor.embed_files(queries, "descriptors --input")
    written = write_set(output, "query", query_ids, q)
    if references:
        reference_ids = image_ids(output_names(references))
        r = extractor.embed_files(references, "descriptors --references")
        written += write_set(output, "reference", reference_ids, r)
        written += write_descriptors(output, query_ids, q, reference_ids, r)
        k = min(args.k or int(extractor.cfg.TEST.COPY_DETECTION.K), len(references))
        if k < 1:
            parser.error(f"--k must be >= 1, got {args.k}")
        scores, indices = knn_search(q, r, k, metric="ip")
        predicted = np.asarray(reference_ids)[indices.ravel()]
        predictions = Predictions(np.repeat(np.asarray(query_ids), k), predicted, scores.ravel())
        write_predictions(os.path.join(output, "predictions.csv"), predictions)
        written.append(os.path.join(output, "predictions.csv"))
    print(f"{len(queries)} inputs, {len(references)} references ({q.shape[1]}-d descriptors) -> "
          + ", ".join(os.path.relpath(w, output) for w in written) + f" in {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
