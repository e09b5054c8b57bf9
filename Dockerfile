# headcast serve on a CUDA machine: ONNX Runtime GPU (CUDA 13 + cuDNN 9), no torch.
#
#   docker build -t headcast .
#   docker run --gpus all --network host \
#       -e HEADCAST_SERVE__ICE_HOST_ADDRESSES='[203.0.113.10]' headcast
#
# WebRTC media flows over UDP ports that ICE picks at run time, so run with
# --network host, or give clients a TURN server (coturn) and relay through it; see
# docs/server.md. Settings: configs/server.yaml, HEADCAST_SERVE__* env vars, flags.
#
# onnxruntime-gpu 1.31 is built for CUDA 13 and cuDNN 9. Those libraries come from
# NVIDIA's PyPI wheels (the [cuda,cudnn] extras), which ONNX Runtime preloads
# (models/onnx_session.py), so the image does not depend on a CUDA base image's version;
# the NVIDIA container runtime (`--gpus`) mounts the driver (libcuda) in.
FROM python:3.11-slim-bookworm

ENV DEBIAN_FRONTEND=noninteractive \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Python 3.11 (the project pins <3.12). PyAV, OpenCV, aiortc and pylibsrtp wheels bundle
# FFmpeg, libvpx, libopus and libsrtp, so no codec packages are needed.
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The built-in text-to-speech voices (`say`, `render --text`).
RUN apt-get update \
    && apt-get install -y --no-install-recommends flite espeak-ng \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first, so code changes do not reinstall them.
# mediapipe (portrait upload / enrollment) goes in without its opencv-contrib-python
# dependency, which would shadow opencv-python-headless; see the Makefile.
COPY requirements/serve.txt requirements/enroll.txt requirements/vad.txt requirements/phones.txt requirements/
RUN pip install --upgrade pip \
    && pip install -r requirements/serve.txt -r requirements/enroll.txt \
        "onnxruntime-gpu[cuda,cudnn]==1.31.1" \
    && pip install --no-deps mediapipe==0.10.21 \
    && pip install --no-deps -r requirements/vad.txt -r requirements/phones.txt

COPY pyproject.toml README.md ./
COPY server server
COPY models models
COPY client client
COPY configs configs
# Editable: the package runs from /app, next to its assets (avatar pack, motion model).
RUN pip install --no-deps -e . \
    && python -c "import headcast.server.app, headcast.models.render, headcast.models.motion"

RUN useradd --create-home --uid 10001 headcast \
    && mkdir -p /app/data/avatars \
    && chown -R headcast /app/data
USER headcast

# Listen on every interface inside the container; ICE host candidates still come
# from HEADCAST_SERVE__ICE_HOST_ADDRESSES (set it to the host's reachable address).
ENV HEADCAST_SERVE__HOST=0.0.0.0 \
    HEADCAST_SERVE__PORT=8080 \
    HEADCAST_SERVE__AVATARS_DIR=/app/data/avatars
EXPOSE 8080/tcp
VOLUME ["/app/data"]
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HEADCAST_SERVE__PORT', '8080'), timeout=2)"
ENTRYPOINT ["headcast", "serve"]
