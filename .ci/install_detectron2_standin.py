"""Install ``shared/compat/detectron2_c_standin.py`` as ``detectron2/_C.py`` when no compiled module exists.

An official detectron2 build (with a real ``_C*.so``) is left untouched.
"""
import importlib.util
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    spec = importlib.util.find_spec("detectron2")
    if spec is None or not spec.submodule_search_locations:
        print("[setup] detectron2 is not installed", file=sys.stderr)
        return 1
    pkg = Path(list(spec.submodule_search_locations)[0])
    compiled = [p for p in pkg.glob("_C*.so")] + [p for p in pkg.glob("_C*.pyd")]
    if compiled:
        print(f"[setup] detectron2 has a compiled extension ({compiled[0].name}); stand-in not needed")
        return 0
    target = pkg / "_C.py"
    source = ROOT / "shared" / "compat" / "detectron2_c_standin.py"
    if not target.exists() or target.read_bytes() != source.read_bytes():
        shutil.copyfile(source, target)
        print(f"[setup] installed detectron2._C stand-in at {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
