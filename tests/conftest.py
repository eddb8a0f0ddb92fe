"""Test-suite wide setup: the compatibility layer, deterministic seeds, CUDA-only test skipping."""
import random

import numpy as np
import pytest
import torch

import shared  # noqa: F401  (applies shared.compat before detectron2 / fastreid / lvis are imported)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
