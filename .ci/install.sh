#!/usr/bin/env bash
# One-command environment for the toolkit (.ci/install.sh, called by `make setup`; safe to re-run).
#
#  .venv/  torch 2.14.1 + torchvision 0.29.1, the pinned companions in requirements.txt,
#          detectron2 (an existing official install is used as is; otherwise the pb1-detectron2==0.6
#          sdist, installed pure-Python with our own detectron2._C stand-in), fastreid 1.4.0 (--no-deps,
#          plus its Cython rank_cy evaluator when it builds), lvis 0.5.3 (--no-deps) and this repository
#          (editable, which also compiles shared's C++/CUDA box ops when a compiler is present).
# Only the package registries are contacted; nothing is downloaded at run time afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
VENV=${VENV:-$ROOT/.venv}
PY=$VENV/bin/python
PIP=(pip_quiet)
pip_quiet() { "$PY" -m pip --disable-pip-version-check "$@" 2> >(grep -v "^WARNING: Location .* is ignored" >&2); }
say() { printf '[setup] %s\n' "$*"; }

if [ ! -x "$PY" ]; then
  say "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi

if ! "$PY" -c "import torch, torchvision" >/dev/null 2>&1; then
  say "installing torch 2.14.1 + torchvision 0.29.1"
  "${PIP[@]}" install -q torch==2.14.1 torchvision==0.29.1
fi

say "installing pinned companion packages (requirements.txt)"
"${PIP[@]}" install -q -r requirements.txt
"${PIP[@]}" install -q --no-deps lvis==0.5.3
# optional: AugLy's core (its Noto fonts and Twemoji images, used by RDCD's text / emoji overlays) without its
# [image] extra, which would pin Pillow < 9; without it RDCD falls back to its own overlays (logged once)
"${PIP[@]}" install -q augly==1.0.0 python-magic==0.4.27 regex==2026.11.19 \
  || say "AugLy not installed (optional): RDCD uses its fallback text/emoji overlays"

# --- detectron2 ---------------------------------------------------------------------------------
if "$PY" -c "import detectron2" >/dev/null 2>&1; then
  say "detectron2 already installed: $("$PY" -c 'import detectron2, os; print(os.path.dirname(detectron2.__file__))')"
else
  say "installing detectron2 0.6 from the pb1-detectron2 sdist (pure Python, no compiled extension)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation pb1-detectron2==0.6 -d "$work"
  tar -xzf "$work"/pb1[-_]detectron2-0.6.tar.gz -C "$work"
  "$PY" .ci/prepare_detectron2_sdist.py "$work"/pb1[-_]detectron2-0.6
  "${PIP[@]}" install -q --no-deps --no-build-isolation "$work"/pb1[-_]detectron2-0.6
fi
# Pillow 10 / numpy 1.24 / setuptools 81 fixes in detectron2's own source (idempotent; also for an existing
# install), so `from detectron2.engine import DefaultPredictor` works without importing the toolkit first.
"$PY" .ci/patch_detectron2_source.py
# Install the project-written stand-in for detectron2._C unless a real compiled module is present.
"$PY" .ci/install_detectron2_standin.py

# --- fastreid -------------------------------------------------------------------------------------
if ! "$PY" -c "import importlib.util as u; exit(u.find_spec('fastreid') is None)"; then
  say "installing fastreid 1.4.0 (--no-deps: its metadata pins torch 1.13.1)"
  "${PIP[@]}" install -q --no-deps fastreid==1.4.0
fi
"$PY" .ci/build_fastreid_cython.py || say "fastreid Cython evaluator did not build; the Python path will be used"

# --- this repository ------------------------------------------------------------------------------
say "installing the toolkit (editable)"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e . 2>&1 | grep -v "^\s*$" | tail -n 20 || true
"$PY" -c "import shared, simd, iif, adasp, rdcd, das" \
  || { say "ERROR: the toolkit packages do not import after installation"; exit 1; }
"$PY" -c "import shared.ops as o; print('[setup] compiled box ops:', o.extension_status())" 2>/dev/null || true
say "done"
