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


REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def readme_commands(readme: str, heading: str) -> list:
    """The shell commands of the first ```bash block after ``heading`` in ``readme`` (a path relative to the
    repository), backslash continuations joined: what a README shows, for a test to run as shown."""
    text = (REPO / readme).read_text()
    section = text[text.index(heading):]
    block = section[section.index("```bash") + len("```bash"):]
    block = block[:block.index("```")]
    return [c.strip() for c in block.replace("\\\n", " ").splitlines() if c.strip() and not c.startswith("#")]


def run_readme_command(command: str, cwd):
    """Run a README command (``python ...``) in ``cwd`` with this interpreter; ``projects`` there must point
    at the repository's. Fails the test with the command's output on a non-zero exit."""
    import os
    import shlex
    import subprocess
    import sys

    args = shlex.split(command)
    assert args[0] == "python", command
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [str(REPO / "projects" / p) for p in ("SimD", "IIF", "AdaSP", "RDCD", "DAS")]
        + [os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable] + args[1:], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture
def readme():
    """``readme.commands(path, heading)``, ``readme.run(command, cwd)``: a README's commands, run as shown."""
    from types import SimpleNamespace

    return SimpleNamespace(commands=readme_commands, run=run_readme_command)
