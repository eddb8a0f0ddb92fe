"""Copy-detection data: dataset registry (DISC21, CD10K, NDEC, synthetic), loaders and augmentations."""
from rdcd.data.augment import build_test_transform, build_train_transform
from rdcd.data.datasets import (
    COPY_DETECTION_DATASETS,
    CopyDetectionSplit,
    build_inference_loader,
    build_train_loader,
    get_copy_detection_dataset,
)

__all__ = [
    "build_test_transform", "build_train_transform", "COPY_DETECTION_DATASETS", "CopyDetectionSplit",
    "build_inference_loader", "build_train_loader", "get_copy_detection_dataset",
]
