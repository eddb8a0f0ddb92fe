# Two commands matter: `make demo` and `make test` (both set the environment up first if needed).
PY      := .venv/bin/python
STAMP   := .venv/.setup-stamp
SETUP_INPUTS := requirements.txt setup.py setup.cfg .ci/install.sh $(wildcard .ci/*.py) \
                shared/compat/detectron2_c_standin.py $(wildcard shared/csrc/*)
PYTEST_ARGS ?=

.PHONY: setup weights demo test lint test-slow bench detectron2-tests clean-venv demo-simd demo-iif demo-adasp demo-rdcd demo-das demo-all

setup: $(STAMP)

$(STAMP): $(SETUP_INPUTS)
	bash .ci/install.sh
	@touch $@

## Pre-fetch pretrained weights into the cache ($$TINYVISION_WEIGHTS_CACHE): one preset (CONFIG=...) or all.
weights: setup
	$(PY) -m shared.weights fetch $(if $(CONFIG),--config $(CONFIG),--all)

## The main job: tiny-object detection on the embedded synthetic AI-TOD-style set.
demo: demo-simd

demo-simd: setup
	$(PY) projects/SimD/demo.py

demo-iif: setup
	$(PY) projects/IIF/demo.py

demo-adasp: setup
	$(PY) projects/AdaSP/demo.py

demo-rdcd: setup
	$(PY) projects/RDCD/demo.py

demo-das: setup
	$(PY) projects/DAS/demo.py

demo-all: demo-simd demo-iif demo-adasp demo-rdcd demo-das

## Unit tests + smoke tests (< 10 min on 2 cores); long runs are marked `slow`.
test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

## The linter CI runs before the tests (pycodestyle + pyflakes rules, 110 columns as setup.cfg's flake8).
lint: setup
	$(PY) -m ruff check --line-length 110 --select E,F,W .

test-slow: setup
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

## detectron2 v0.6's own tests/ on this stack (exclusions and reasons: .ci/detectron2_test_exclusions.txt)
detectron2-tests: setup
	@test -n "$(D2)" || { echo "usage: make detectron2-tests D2=/path/to/detectron2-v0.6-checkout"; exit 2; }
	$(PY) .ci/run_detectron2_tests.py "$(D2)" $(if $(PYTEST_ARGS),-- $(PYTEST_ARGS))

## Every speed benchmark of docs/results.md with its arguments there, then a PASS/FAIL summary per target.
bench: setup
	$(PY) benchmarks/run_all.py

clean-venv:
	rm -rf .venv
