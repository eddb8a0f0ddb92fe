"""Fix detectron2 0.6's own source for Pillow >= 10, numpy >= 1.24, setuptools >= 81 and torch 2, in place.

``shared.compat`` restores the removed names at run time, but only in a process that imports ``shared``
first; a plain ``from detectron2.engine import DefaultPredictor`` dies on ``Image.LINEAR`` (evaluated when
``detectron2.data.transforms`` is imported). This script rewrites the names in the source itself, so the
installed detectron2 works on its own:

==============================================  ===========================================
detectron2 source                               becomes
==============================================  ===========================================
``Image.LINEAR`` / ``Image.CUBIC`` /             ``Image.BILINEAR`` / ``Image.BICUBIC`` /
``Image.ANTIALIAS`` (removed in Pillow 10)       ``Image.LANCZOS`` (the same filters)
``np.bool`` ``np.int`` ``np.float`` ``np.str``   ``bool`` ``int`` ``float`` ``str`` ``object``
``np.object`` (removed in numpy 1.24)            (what the aliases always were)
``import pkg_resources`` (model_zoo)             the same import, else ``importlib.resources``
``torch.meshgrid(shifts_y, shifts_x)``           the same call with ``indexing="ij"`` (its
(anchor generator; torch warns on every          default, so the same grids; without it torch
training start that the argument will be         prints a UserWarning in every training run)
required)
==============================================  ===========================================

Idempotent: a second run changes nothing. Used by ``.ci/prepare_detectron2_sdist.py`` on the sdist before
it is installed, and by ``.ci/install.sh`` on an already-installed detectron2 (skipped with a message when
its folder is not writable).

    python .ci/patch_detectron2_source.py [DETECTRON2_PACKAGE_DIR]   # default: the installed package
"""
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Dict, List, Tuple

#: (pattern, replacement) applied to every .py file of the package
SUBSTITUTIONS: List[Tuple[str, str]] = [
    (r"\bImage\.LINEAR\b", "Image.BILINEAR"),
    (r"\bImage\.CUBIC\b", "Image.BICUBIC"),
    (r"\bImage\.ANTIALIAS\b", "Image.LANCZOS"),
    (r"\bnp\.(bool|int|float|str|object)\b", r"\1"),
    (r"\btorch\.meshgrid\(shifts_y, shifts_x\)", 'torch.meshgrid(shifts_y, shifts_x, indexing="ij")'),
]

#: the model zoo's import, and what it becomes (only the one function model_zoo.py calls is needed)
PKG_RESOURCES_IMPORT = "import pkg_resources\n"
PKG_RESOURCES_FALLBACK = (
    "try:\n"
    "    import pkg_resources\n"
    "except ImportError:  # setuptools >= 81 ships no pkg_resources (patched by the toolkit's installer)\n"
    "    import importlib.resources as _resources\n"
    "    import types as _types\n"
    "\n"
    "    pkg_resources = _types.SimpleNamespace(\n"
    "        resource_filename=lambda package, name: str(_resources.files(package).joinpath(name)))\n"
)


def patch_text(text: str) -> Tuple[str, int]:
    """``text`` with every substitution applied; returns it and the number of replacements."""
    total = 0
    for pattern, replacement in SUBSTITUTIONS:
        text, n = re.subn(pattern, replacement, text)
        total += n
    lines = text.splitlines(keepends=True)
    if PKG_RESOURCES_IMPORT in lines:  # a top-level bare import (the fallback's is indented)
        index = lines.index(PKG_RESOURCES_IMPORT)
        lines[index] = PKG_RESOURCES_FALLBACK
        text = "".join(lines)
        total += 1
    return text, total


def patch_tree(package_dir: Path) -> Dict[str, int]:
    """Patch every ``.py`` file below ``package_dir`` (the ``detectron2`` package folder); returns
    ``{relative path: replacements}`` of the files changed."""
    package_dir = Path(package_dir)
    if not (package_dir / "__init__.py").is_file():
        raise SystemExit(f"{package_dir}: not a Python package folder (no __init__.py)")
    changed = {}
    for path in sorted(package_dir.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        new_text, count = patch_text(text)
        if count:
            path.write_text(new_text, encoding="utf-8")
            changed[str(path.relative_to(package_dir))] = count
    return changed


def installed_package_dir() -> Path:
    """The installed ``detectron2`` folder, found without importing it (importing would fail)."""
    spec = importlib.util.find_spec("detectron2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("detectron2 is not installed in this interpreter")
    return Path(list(spec.submodule_search_locations)[0])


def main(argv: List[str]) -> int:
    package_dir = Path(argv[0]) if argv else installed_package_dir()
    if not os.access(package_dir, os.W_OK):
        print(f"[setup] {package_dir} is not writable: detectron2's source left as is (the toolkit's runtime "
              "fixes still apply after `import shared`)")
        return 0
    changed = patch_tree(package_dir)
    total = sum(changed.values())
    print(f"[setup] detectron2 source fixes for Pillow/numpy/setuptools/torch: {total} replacements in "
          f"{len(changed)} files of {package_dir}" if changed else
          f"[setup] detectron2 source at {package_dir} already fixed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
