# icegan — make setup | test | demo
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: setup test coverage demo demo-features clean

setup: $(STAMP)

# Reinstalls only when the pins or the package metadata change.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24" || true
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	$(PIP) install -q -c constraints.txt --no-deps face_recognition
	$(PY) -c "import torch, torchvision, torch_geometric, cv2, face_recognition, sklearn, skimage; print('icegan setup ok: torch', torch.__version__)"
	@touch $(STAMP)

test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile tests

# The same suite under coverage.py (settings: [tool.coverage.*] in pyproject.toml); a report of the files not fully
# covered on screen and in runs/coverage/html/index.html. About 1.4x the time of make test.
coverage: setup
	rm -rf runs/coverage && mkdir -p runs/coverage
	$(PY) -m coverage run -m pytest -q -n 2 --dist loadfile tests
	$(PY) -m coverage combine -q
	$(PY) -m coverage report
	$(PY) -m coverage html -q

# The main job on its embedded default: the built-in synthetic micro-expression demo (configs/demo.yaml).
demo: setup
	$(PY) train.py

# the feature-only LOSO on the tiny built-in feature set (seconds)
demo-features: setup
	$(VENV)/bin/icegan loso --config configs/demo_features.yaml --out runs/demo_features

clean:
	rm -rf $(VENV) runs .pytest_cache
