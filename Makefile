# sat2cap developer commands. Every target creates/reuses the local virtualenv .venv itself.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sat2cap-installed
DEMO_OUT ?= demo_out

.PHONY: install demo test nbtest pytest export clean-nbs rerun docs readme wheel-check release-check bench

install: $(STAMP)

# torch/torchvision are pinned to the wheels this project's machines carry on disk; the
# package itself only asks for ranges (settings.ini).
$(STAMP): settings.ini setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[dev,hf]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sat2cap demo --out $(DEMO_OUT) $(DEMO_ARGS)

export: $(STAMP)
	$(BIN)/nbdev_export

nbtest: $(STAMP)
	$(BIN)/nbdev_test --n_workers 2 --timing

pytest: $(STAMP)
	$(BIN)/python -m pytest -q tests

test: $(STAMP)
	$(BIN)/nbdev_export
	git diff --exit-code --stat -- sat2cap || (echo "sat2cap/ is out of sync with nbs/: run nbdev_export and commit" && exit 1)
	$(BIN)/nbdev_test --n_workers 2 --timing
	$(BIN)/python -m pytest -q tests

clean-nbs: $(STAMP)
	$(BIN)/nbdev_clean

# re-execute notebooks top to bottom in a Jupyter kernel (the outputs a reader gets from Jupyter, not execnb's
# CaptureShell) and save their outputs in place: make rerun NBS="nbs/07_retrieval.ipynb nbs/09_maps.ipynb"
# (progress bars off: a kernel stores each as a widget that the docs show as a frozen "0%" bar)
rerun: $(STAMP)
	@test -n "$(NBS)" || (echo 'name the notebooks: make rerun NBS="nbs/07_retrieval.ipynb ..."' && exit 2)
	for nb in $(NBS); do \
		SAT2CAP_NO_PROGRESS=1 $(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=-1 $$nb \
			&& $(BIN)/nbdev_clean --fname $$nb || exit 1; \
	done

# nbdev_docs (quarto) where quarto is installed; otherwise the same notebooks, processed by nbdev, rendered
# by Sphinx + MyST-NB (tools/build_docs.py). Either way README.md is regenerated from nbs/index.ipynb.
docs: $(STAMP)
	@if command -v quarto >/dev/null 2>&1; then \
		$(BIN)/nbdev_docs && $(BIN)/python tools/build_docs.py readme; \
	else \
		echo "quarto not found: building _docs/ with Sphinx + MyST-NB from nbdev's processed notebooks"; \
		$(BIN)/python tools/build_docs.py; \
	fi

readme: $(STAMP)
	$(BIN)/python tools/build_docs.py readme

# builds the wheel, installs it into a fresh venv and runs `sat2cap --help` / `sat2cap synthworld` from it
wheel-check: $(STAMP)
	SAT2CAP_SLOW=1 $(BIN)/python -m pytest -q -s tests/test_packaging.py

# what .github/workflows/publish.yml does before uploading, plus an install: build the sdist and, from it, the
# wheel into dist/release/ (`python -m build`), `twine check --strict` both, then install that wheel into a
# fresh venv and run `sat2cap --help` and `sat2cap synthworld` from it (tests/test_packaging.py)
release-check: $(STAMP)
	$(BIN)/python tools/build_docs.py readme --check
	rm -rf dist/release
	$(BIN)/python -m pip install -q build twine
	$(BIN)/python -m build --outdir dist/release .
	$(BIN)/python -m twine check --strict dist/release/*
	SAT2CAP_SLOW=1 SAT2CAP_WHEEL="$$(ls $(CURDIR)/dist/release/sat2cap-*.whl)" $(BIN)/python -m pytest -q -s tests/test_packaging.py -k fresh_venv

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_synthworld.py
