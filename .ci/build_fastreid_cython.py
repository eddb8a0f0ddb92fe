"""Compile fastreid's Cython ranking module (``fastreid.evaluation.rank_cylib.rank_cy``) in place.

The fastreid wheel ships only the ``.pyx`` sources; without the compiled module fastreid falls back to
its Python ranking loop. Building is optional: a failure exits non-zero and install.sh carries on.
"""
import importlib.util
import subprocess
import sys
from pathlib import Path


def main() -> int:
    spec = importlib.util.find_spec("fastreid")
    if spec is None:
        print("[setup] fastreid not installed", file=sys.stderr)
        return 1
    cylib = Path(list(spec.submodule_search_locations)[0]) / "evaluation" / "rank_cylib"
    if list(cylib.glob("rank_cy*.so")):
        print("[setup] fastreid rank_cy already built")
        return 0
    setup_py = cylib / "setup.py"
    if not setup_py.exists():
        print(f"[setup] {setup_py} missing", file=sys.stderr)
        return 1
    print("[setup] building fastreid's Cython evaluator (about 30 s)")
    proc = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=cylib,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0 or not list(cylib.glob("rank_cy*.so")):
        print(proc.stdout[-3000:], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
