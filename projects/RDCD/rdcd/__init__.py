"""rdcd project package."""

import shared  # noqa: F401  (applies the compatibility layer before detectron2/fastreid are imported)
