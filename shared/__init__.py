"""Common code of the toolkit: box similarities, retrieval evaluation, compiled ops, compatibility layer,
synthetic dataset generators.

Importing ``shared`` applies :mod:`shared.compat` (idempotent), so every project package imports it
before detectron2, lvis or fastreid.
"""
from shared import compat as _compat

_compat.apply()

__version__ = "0.3.0"
