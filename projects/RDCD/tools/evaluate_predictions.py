#!/usr/bin/env python
"""Score a copy-detection predictions CSV against a ground-truth CSV: µAP, recall@P90, accuracy@1 (DISC21).

    python projects/RDCD/tools/evaluate_predictions.py GT.csv PRED.csv [--references DIR_OR_IDS.txt] [--json]

GT.csv: ``query_id,reference_id`` (empty reference for a query without a copy; several rows for a query with
several copies). PRED.csv: ``query_id,reference_id,score`` (higher = more likely a copy), e.g. the
``predictions.csv`` that ``train_net.py`` / ``predict.py`` write, or any other tool's output in isc2021's
format.

Scoring follows isc2021 (``isc/metrics.py``), the same rule the training run uses: a prediction is positive
when its (query, reference) pair is a ground-truth row; every other prediction -- also one for a query that
has no ground-truth row at all -- counts as a false positive (the number of such queries is printed).
Values are printed in percent, with the unit (isc2021 prints the same numbers as fractions: µAP 0.629 % is
its "Average Precision: 0.00629"); ``--json`` gives them at full precision.

Ids are checked: with ``--queries`` / ``--references`` (an image folder or a text file of ids) every predicted
id must be known; without them, predictions whose query (reference) ids share nothing with the ground truth's
are refused. An unknown id (``Q00000.jpg``, a typo) is an error naming the first few and the closest known id.
"""

import argparse
import csv
import json
import os
import sys

import numpy as np

from shared.datasets.synthetic_copy_detection import read_ground_truth_csv
from shared.retrieval.copy_detection import check_known_ids, micro_average_precision


def read_predictions_csv(path: str):
    """(query ids, reference ids, scores) of a ``query_id,reference_id,score`` CSV (header optional, as
    isc2021's reader); a malformed row raises ``ValueError`` naming the file and line."""
    queries, references, scores = [], [], []
    with open(path, newline="") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            if not row or (
                line_no == 1 and [c.strip() for c in row] == ["query_id", "reference_id", "score"]
            ):
                continue
            try:
                q, r, s = (c.strip() for c in row)
                score = float(s)
            except ValueError:
                raise ValueError(
                    f"malformed predictions CSV {path!r}, line {line_no}: expected "
                    f"'query_id,reference_id,score', got {row!r}"
                ) from None
            queries.append(q)
            references.append(r)
            scores.append(score)
    return np.array(queries), np.array(references), np.array(scores, dtype=np.float64)


def known_reference_ids(source: str):
    """Ids of the images in a folder (file names without extension) or the lines of a text file."""
    if os.path.isdir(source):
        return [os.path.splitext(n)[0] for n in os.listdir(source) if not n.startswith(".")]
    with open(source) as f:
        return [line.strip() for line in f if line.strip()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("ground_truth")
    parser.add_argument("predictions")
    parser.add_argument("--references", default="", help="folder of reference images or a file of their ids")
    parser.add_argument("--queries", default="", help="folder of query images or a file of their ids")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    args = parser.parse_args(argv)
    gt = read_ground_truth_csv(args.ground_truth)
    queries, references, scores = read_predictions_csv(args.predictions)
    gt_queries = sorted({q for q, _ in gt})
    gt_references = sorted({r for _, r in gt if r})
    if args.queries:
        check_known_ids(
            queries,
            known_reference_ids(args.queries),
            f"prediction query ids of {args.predictions}",
            f"the query ids of {args.queries}",
        )
    elif len(queries) and not set(queries.tolist()) & set(gt_queries):
        check_known_ids(
            queries[:1],
            gt_queries,
            f"prediction query ids of {args.predictions}",
            f"the query ids of {args.ground_truth} (none of the predicted ones occurs there)",
        )
    if args.references:
        check_known_ids(
            references,
            known_reference_ids(args.references),
            f"prediction reference ids of {args.predictions}",
            f"the reference ids of {args.references}",
        )
    elif len(references) and gt_references and not set(references.tolist()) & set(gt_references):
        check_known_ids(
            references[:1],
            gt_references,
            f"prediction reference ids of {args.predictions}",
            f"the reference ids of {args.ground_truth} (none of the predicted ones occurs there)",
        )
    result = micro_average_precision({"query": queries, "reference": references, "score": scores}, gt)
    metrics = dict(result.as_dict())
    without_gt = sorted(set(queries.tolist()) - set(gt_queries))
    counts = dict(num_predictions=result.num_predictions, num_gt=result.num_gt,
                  num_queries_without_gt_row=len(without_gt))
    if args.json:
        print(json.dumps({**metrics, **counts, "unit": "percent"}))
    else:
        for key, value in metrics.items():
            print(f"{key:>26}: {value:.4f} %")
        for key, value in counts.items():
            print(f"{key:>26}: {value}")
        if without_gt:
            print(f"predictions of {len(without_gt)} queries without a ground-truth row (e.g. "
                  f"{without_gt[0]!r}) were scored as false positives (isc2021's rule)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
