"""Prepare an unpacked ``pb1-detectron2==0.6`` sdist for a pure-Python install.

The sdist is detectron2 v0.6's Python code without its C++ sources, so:
1. ``setup.py`` must not declare the ``detectron2._C`` extension (its sources are absent), and
2. the model-zoo yaml files must sit in a top-level ``configs/`` folder, which is where ``setup.py``
   looks for them (the sdist keeps them only under ``detectron2/model_zoo/configs``);
3. names removed by Pillow 10, numpy 1.24 and setuptools 81 are fixed in the source
   (``.ci/patch_detectron2_source.py``), so a plain ``import detectron2...`` works.
The compiled module is replaced afterwards by ``.ci/install_detectron2_standin.py``.
"""
import re
import shutil
import sys
from pathlib import Path

from patch_detectron2_source import patch_tree  # the script's own folder (.ci/) is on sys.path


def prepare(src: Path) -> None:
    setup_py = src / "setup.py"
    text = setup_py.read_text()
    new_text, count = re.subn(r"ext_modules\s*=\s*get_extensions\(\)", "ext_modules=[]", text)
    if count != 1 and "ext_modules=[]" not in text:
        raise SystemExit(f"{setup_py}: could not find 'ext_modules=get_extensions()' to disable")
    setup_py.write_text(new_text)

    zoo = src / "detectron2" / "model_zoo" / "configs"
    top = src / "configs"
    if not top.exists():
        if not zoo.is_dir():
            raise SystemExit(f"{zoo}: model-zoo configs missing from the sdist")
        shutil.move(str(zoo), str(top))
    n = sum(1 for p in top.rglob("*") if p.is_file())
    fixed = patch_tree(src / "detectron2")
    print(f"[setup] detectron2 sdist prepared: extension disabled, {n} model-zoo config files, "
          f"{sum(fixed.values())} Pillow/numpy/setuptools/torch fixes in {len(fixed)} files")


if __name__ == "__main__":
    prepare(Path(sys.argv[1]))
