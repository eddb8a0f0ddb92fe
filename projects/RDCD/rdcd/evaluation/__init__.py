"""Copy-detection evaluation (DISC21 protocol via shared.retrieval.copy_detection)."""
from rdcd.evaluation.copy_detection import evaluate_copy_detection_model, evaluate_on_test_sets, extract_descriptors

__all__ = ["evaluate_copy_detection_model", "evaluate_on_test_sets", "extract_descriptors"]
