#!/usr/bin/env bash
# CUDA checks and GPU benchmarks, for a machine with an NVIDIA GPU and onnxruntime-gpu
# (CUDA 13 and cuDNN 9 libraries on the library path). Run from the repository root:
#   bash scripts/gpu-check.sh            # PYTHON=... to pick the interpreter
# The CPU-only test suite skips these checks; this script is where they run.
set -u
PY=${PYTHON:-python3}
status=0
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || status=1
"$PY" - <<'PYEOF' || status=1
import onnxruntime as ort
from headcast.models.onnx_session import _probe_model, create_session
print("onnxruntime", ort.__version__, ort.get_available_providers())
print("probe session on", create_session(_probe_model(), "cuda").get_providers())
PYEOF
"$PY" -m pytest -q -p no:cacheprovider -rs -s tests/test_cuda.py || status=1
"$PY" -m server bench render --sizes 256 512 --onnx-batches 1 4 16 --seconds 2 || status=1
"$PY" -m server bench edtalk --random --providers cuda --precisions fp32 fp16 \
    --batches 1 4 16 --seconds 3 || status=1
exit $status
