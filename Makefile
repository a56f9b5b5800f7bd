# cxr-gan: the two commands a user needs are `make demo` (run the main job) and `make test` (run the tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PROFILE ?= demo
STORE ?= file://$(CURDIR)/cxr-store

.PHONY: venv demo test test-slow bench lock pin-bases templates clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[all]"
	touch $(STAMP)

## Main job: the paper's workflow (argo/paper.yaml) on demo phantoms, executed locally; prints the report path.
demo: venv
	$(VENV)/bin/cxr run argo/paper.yaml --profile $(PROFILE) --store $(STORE)

## Default test run (CPU, fast). Slow checks: `make test-slow`.
test: venv
	$(PY) -m pytest -m "not slow" -q

test-slow: venv
	$(PY) -m pytest -m slow -q

bench: venv
	$(PY) bench/input_pipeline.py
	$(PY) bench/gan_step.py
	$(PY) bench/inception_cost.py

## Regenerate the images' hash-checked locks (docker/requirements/*.txt) from pyproject.toml and the Dockerfiles'
## TensorFlow base; needs the package index and CPython 3.11 on Linux x86_64. tests/test_locks.py checks them.
lock: venv
	$(PY) -m cxrcore.ops.locks

## Pin every Dockerfile's FROM by digest, resolved and verified through the registry API (needs the registry;
## ARGS=--update re-resolves pinned lines, ARGS=--check lists unpinned ones offline, ARGS="--registry-mirror URL").
pin-bases: venv
	$(PY) -m cxrcore.ops.base_images $(ARGS)

## Regenerate argo/templates.yaml from cxrcore/ops/argo_templates.py and the jobs' Settings classes
## (tests/test_argo_templates.py fails until the checked-in file matches).
templates: venv
	$(PY) -m cxrcore.ops.argo_templates

clean:
	rm -rf build cxr-store cxr-runs .pytest_cache
