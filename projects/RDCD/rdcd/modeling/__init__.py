"""RDCD / SSCD models: descriptor networks, losses, queues, relational distillation, meta-architectures
(``RDCD`` and ``SSCD`` are registered in detectron2's ``META_ARCH_REGISTRY``)."""

from rdcd.modeling.meta_arch import RDCD, SSCD, build_model
from rdcd.modeling.networks import NETWORK_REGISTRY, GeM, build_network, load_network_weights
from rdcd.modeling.relational import RELATIONAL_KD_MODES, build_relational_kd
from rdcd.modeling.student import Student

__all__ = [
    "RDCD",
    "SSCD",
    "build_model",
    "NETWORK_REGISTRY",
    "GeM",
    "build_network",
    "load_network_weights",
    "RELATIONAL_KD_MODES",
    "build_relational_kd",
    "Student",
]
