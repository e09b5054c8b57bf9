# headcast — set-up, serve, test, train. Every target installs what it needs.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: serve test setup setup-dev lint typecheck unit train-motion default-avatar bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# mediapipe ships the face-mesh model inside the wheel but depends on
# opencv-contrib-python, a second cv2 that would shadow opencv-python-headless:
# install its other dependencies pinned, then mediapipe itself without deps.
# (Serving an enrolled avatar never imports it; uploading a portrait does.)
$(VENV)/.serve-ok: $(BIN)/python requirements/serve.txt requirements/enroll.txt pyproject.toml
	$(PIP) install -q -r requirements/serve.txt -r requirements/enroll.txt
	$(PIP) install -q --no-deps mediapipe==0.10.21
	$(PIP) install -q --no-deps -e .
	touch $@

# One resolver run for everything (a later lone `pip install onnx` would pull
# protobuf 7 and break mediapipe).
$(VENV)/.dev-ok: $(VENV)/.serve-ok requirements/dev.txt
	$(PIP) install -q -r requirements/serve.txt -r requirements/enroll.txt -r requirements/dev.txt
	touch $@

setup:
	scripts/apt-deps.sh serve
	$(MAKE) $(VENV)/.serve-ok

setup-dev:
	scripts/apt-deps.sh test
	$(MAKE) $(VENV)/.dev-ok

serve: setup
	$(BIN)/headcast serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.dev-ok
	$(BIN)/ruff check server models client tests scripts
	$(BIN)/ruff format --check server models client tests scripts

typecheck: $(VENV)/.dev-ok
	MYPY=$(BIN)/mypy scripts/typecheck.sh

unit: $(VENV)/.dev-ok
	$(BIN)/python -m pytest -q

test: setup-dev
	$(MAKE) lint typecheck unit

default-avatar: $(VENV)/.dev-ok
	$(BIN)/python scripts/make_default_avatar.py

train-motion: setup-dev
	$(BIN)/headcast train motion

bench: $(VENV)/.dev-ok
	$(BIN)/headcast bench render

clean:
	rm -rf $(VENV) build *.egg-info
