"""DAS: Densely-Anchored Sampling for deep metric learning, as a detectron2-style project.

Importing the package applies the compatibility layer (``shared``) and registers the metric-learning datasets
(``das.datasets``) and the ``DASEmbeddingModel`` meta-architecture (``das.modeling``).
"""
import shared  # noqa: F401  (applies the compatibility layer before detectron2/fastreid are imported)

from das import datasets, modeling  # noqa: F401,E402  (registrations)
from das.config import add_das_config  # noqa: E402
from das.modeling.producer import DASEmbeddingProducer, build_das_producer  # noqa: E402

__all__ = ["add_das_config", "DASEmbeddingProducer", "build_das_producer"]
