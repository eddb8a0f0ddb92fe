"""SimD (Similarity Distance) label assignment for tiny objects, as detectron2 extensions.

Importing the package applies the toolkit's compatibility layer and registers ``SimilarityRPN``,
``SimilarityROIHeads``, ``SimilarityCascadeROIHeads`` and ``SimilarityRetinaNet`` in detectron2's registries.
"""
import shared  # noqa: F401  (applies the compatibility layer before detectron2/fastreid are imported)

from simd import modeling as _modeling  # noqa: F401  (registers the model components)
from simd.config import add_simd_config
from simd.matcher import MaxSimMatcher, build_matcher

__all__ = ["add_simd_config", "MaxSimMatcher", "build_matcher"]
