"""Retrieval evaluation shared by all projects: faiss k-NN, ReID (FastReID protocol), deep metric
learning (Recall@K, NMI, F1, MAP@R) and image copy detection (DISC21 µAP).

Modules (import the functions from them; the main ones are re-exported here):

* :mod:`shared.retrieval.knn` — ``knn_search``, ``build_index``, ``l2_normalize``.
* :mod:`shared.retrieval.reid` — ``evaluate_reid``, ``evaluate_reid_features``, ``compute_distmat``,
  ``rerank_k_reciprocal`` (CPU k-reciprocal re-ranking, :mod:`shared.retrieval.rerank`), ``ReIDResult``.
* :mod:`shared.retrieval.vehicleid` — seeded VehicleID small/medium/large protocol, ``evaluate_vehicleid``.
* :mod:`shared.retrieval.metric_learning` — ``evaluate_embeddings``, ``evaluate_query_gallery``,
  ``MetricLearningResult``.
* :mod:`shared.retrieval.copy_detection` — ``evaluate_copy_detection``, ``micro_average_precision``,
  ``score_normalize``, ``CopyDetectionResult``.

See the "Retrieval evaluation" section of ``shared/README.md`` for one example per metric family.
"""
from shared.retrieval.copy_detection import (
    CopyDetectionResult,
    evaluate_copy_detection,
    micro_average_precision,
    score_normalize,
)
from shared.retrieval.knn import build_index, knn_search, l2_normalize
from shared.retrieval.metric_learning import MetricLearningResult, evaluate_embeddings, evaluate_query_gallery
from shared.retrieval.reid import (
    ReIDResult,
    compute_distmat,
    evaluate_reid,
    evaluate_reid_features,
    rerank_k_reciprocal,
)
from shared.retrieval.vehicleid import evaluate_vehicleid, vehicleid_split

__all__ = [
    "knn_search", "build_index", "l2_normalize",
    "ReIDResult", "evaluate_reid", "evaluate_reid_features", "compute_distmat", "rerank_k_reciprocal",
    "evaluate_vehicleid", "vehicleid_split",
    "MetricLearningResult", "evaluate_embeddings", "evaluate_query_gallery",
    "CopyDetectionResult", "evaluate_copy_detection", "micro_average_precision", "score_normalize",
]
