"""FastReID's ``ReidEvaluator`` interface with the metrics of :mod:`shared.retrieval.reid`.

The evaluator collects features / pids / camids exactly like fastreid's (``process`` is inherited), then
computes the query x gallery distance with ``shared.retrieval.reid.compute_distmat`` (``TEST.METRIC``) and
CMC / mAP / mINP with ``shared.retrieval.reid.evaluate_reid`` (FastReID protocol: same pid + same camera
removed). Ids are cast to int64 first (fastreid#74: the Cython path failed on platform-dependent int widths),
and no Cython module is needed, so a stale or missing ``rank_cy`` (fastreid#387) cannot break evaluation.

With an ``output_dir`` (the trainer passes ``OUTPUT_DIR/inference/<dataset>``) every evaluation also writes
there: ``query_embeddings.npy`` + ``query_ids.txt``, ``gallery_embeddings.npy`` + ``gallery_ids.txt`` (ids =
image paths relative to their split's folder) and ``ranking.csv`` (the ``TEST.RANKING_TOPK`` nearest gallery
images of every query by the evaluated distance, after re-ranking when enabled, ``score`` = that distance,
``label_match`` = same person id), :mod:`shared.retrieval.export`'s formats.
"""
from __future__ import annotations

import copy
import itertools
import logging
import os
from collections import OrderedDict

import numpy as np
import torch
from fastreid.evaluation import ReidEvaluator
from fastreid.evaluation.query_expansion import aqe
from fastreid.utils import comm

from shared.engine.predict import output_names
from shared.retrieval import reid as reid_metrics
from shared.retrieval.export import write_embeddings, write_ranking_csv

__all__ = ["SharedReidEvaluator"]

logger = logging.getLogger(__name__)


class SharedReidEvaluator(ReidEvaluator):
    """Drop-in replacement of ``fastreid.evaluation.ReidEvaluator`` (same constructor and result keys:
    ``Rank-1/5/10``, ``mAP``, ``mINP``, ``metric`` = (mAP + Rank-1) / 2, all in percent)."""

    def process(self, inputs, outputs):
        super().process(inputs, outputs)
        self._predictions[-1]["paths"] = list(inputs.get("img_paths", []))

    def _compile_dependencies(self):
        """Nothing to compile: the metrics come from ``shared.retrieval`` (pure numpy)."""

    def _gathered_predictions(self):
        if comm.get_world_size() > 1:
            comm.synchronize()
            predictions = list(itertools.chain(*comm.gather(self._predictions, dst=0)))
            if not comm.is_main_process():
                return None
            return predictions
        return self._predictions

    def evaluate(self):
        predictions = self._gathered_predictions()
        if predictions is None:
            return {}
        if not predictions:
            raise ValueError("ReID evaluation received no predictions (empty test loader?)")
        features = torch.cat([p["feats"] for p in predictions], dim=0)
        pids = torch.cat([p["pids"] for p in predictions], dim=0).numpy().astype(np.int64)
        camids = torch.cat([p["camids"] for p in predictions], dim=0).numpy().astype(np.int64)
        num_query = self._num_query
        if not 0 < num_query < len(features):
            raise ValueError(f"ReID evaluation needs queries and gallery: num_query={num_query}, "
                             f"{len(features)} features in total")
        query_features, gallery_features = features[:num_query], features[num_query:]

        if self.cfg.TEST.AQE.ENABLED:
            logger.info("Test with AQE setting")
            aqe_cfg = self.cfg.TEST.AQE
            query_features, gallery_features = aqe(query_features, gallery_features, aqe_cfg.QE_TIME,
                                                   aqe_cfg.QE_K, aqe_cfg.ALPHA)
        if self.cfg.TEST.RERANK.ENABLED:
            # k-reciprocal re-ranking on CPU or GPU (fastreid 1.4.0's own implementation is GPU-only)
            rr = self.cfg.TEST.RERANK
            logger.info("Test with k-reciprocal re-ranking (k1=%d, k2=%d, lambda=%.2f)", rr.K1, rr.K2,
                        rr.LAMBDA)
            distmat = reid_metrics.rerank_k_reciprocal(query_features, gallery_features, k1=rr.K1, k2=rr.K2,
                                                       lambda_value=rr.LAMBDA, metric=self.cfg.TEST.METRIC)
        else:
            distmat = reid_metrics.compute_distmat(query_features, gallery_features, self.cfg.TEST.METRIC)

        if self._output_dir:
            paths = [p for prediction in predictions for p in prediction.get("paths", [])]
            self._export(query_features, gallery_features, distmat, paths, pids, num_query)
        result = reid_metrics.evaluate_reid(distmat, pids[:num_query], pids[num_query:],
                                            camids[:num_query], camids[num_query:])
        self._results = OrderedDict(result.as_dict())
        if self.cfg.TEST.ROC.ENABLED:
            logger.warning("TEST.ROC is not computed by the shared evaluator; ignoring it")
        return copy.deepcopy(self._results)

    def _export(self, query_features, gallery_features, distmat, paths, pids, num_query) -> None:
        """The files of the module docstring in ``self._output_dir``."""
        if len(paths) != len(pids):
            logger.warning("image paths missing from the test loader: nothing exported")
            return
        query_ids, gallery_ids = output_names(paths[:num_query]), output_names(paths[num_query:])
        write_embeddings(self._output_dir, query_ids, np.asarray(query_features), prefix="query_")
        write_embeddings(self._output_dir, gallery_ids, np.asarray(gallery_features), prefix="gallery_")
        distances = np.asarray(distmat, dtype=np.float64)
        k = min(int(self.cfg.TEST.RANKING_TOPK), distances.shape[1])
        order = np.argsort(distances, axis=1, kind="stable")[:, :k]
        path = write_ranking_csv(os.path.join(self._output_dir, "ranking.csv"), query_ids, gallery_ids, order,
                                 np.take_along_axis(distances, order, axis=1), pids[:num_query],
                                 pids[num_query:])
        logger.info("embeddings and the top-%d ranking written to %s", k, os.path.dirname(path))
