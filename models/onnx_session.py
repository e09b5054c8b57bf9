"""ONNX Runtime sessions with the execution provider picked at run time.

``provider="auto"`` takes CUDA when onnxruntime reports it *and* a session can
actually be created on it (a CUDA wheel on a machine without a GPU lists the
provider but fails to start it), else CPU. Model metadata is read back as a
dict so artifacts describe themselves.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import onnxruntime as ort

log = logging.getLogger(__name__)

Provider = Literal["auto", "cpu", "cuda"]
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
#: Full float32 on the GPU: by default the CUDA provider runs float32 matrix products and
#: convolutions in TF32 (10-bit mantissa), which moved warped pixels by up to 4 levels
#: and EDTalk's fp32 frames by 3e-2 on an H200. fp16 graphs are the fast option.
CUDA_OPTIONS = {"use_tf32": "0"}


@lru_cache(maxsize=1)
def cuda_available() -> bool:
    """True when the CUDA provider is present, a GPU is visible and a session starts on it."""
    if CUDA not in ort.get_available_providers():
        return False
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return False
    if not any(Path("/dev").glob("nvidia[0-9]*")):
        return False
    _preload_cuda_libraries()
    try:
        _new_session(_probe_model(), [CUDA, CPU])
    except Exception as exc:  # any failure to start means: not usable here
        log.warning("CUDA execution provider unusable, using the CPU: %s", exc)
        return False
    return True


@lru_cache(maxsize=1)
def _preload_cuda_libraries() -> None:
    """Load CUDA 13 / cuDNN 9 from NVIDIA's PyPI wheels when installed (the Docker image).

    Without those wheels the libraries must be on the loader's path, as with a system
    CUDA install; ONNX Runtime then finds them itself. What the preload prints goes to
    this module's debug log, and ONNX Runtime's own log is cut to fatal errors (unless
    this module logs at DEBUG): a CUDA provider that cannot start printed a screenful of
    library errors before the one-line reason this module gives (see ``_new_session``).
    """
    if not log.isEnabledFor(logging.DEBUG):
        ort.set_default_logger_severity(4)
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    printed = io.StringIO()  # it prints each library it cannot find
    try:
        with contextlib.redirect_stdout(printed):
            preload(cuda=True, cudnn=True, msvc=False)
    except Exception as exc:  # a missing library shows up when the provider starts
        log.debug("CUDA library preload skipped: %s", exc)
    if printed.getvalue().strip():
        log.debug("CUDA library preload: %s", printed.getvalue().strip())


def _probe_model() -> bytes:
    """A one-node graph (y = x + x) to try a provider with."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def resolve_providers(provider: Provider = "auto") -> list[str]:
    if provider == "cpu":
        return [CPU]
    if provider == "cuda":
        if CUDA not in ort.get_available_providers():
            raise RuntimeError("CUDA execution provider requested but onnxruntime has none")
        _preload_cuda_libraries()
        return [CUDA, CPU]
    return [CUDA, CPU] if cuda_available() else [CPU]


def create_session(
    model: str | Path | bytes,
    provider: Provider = "auto",
    threads: int | None = None,
) -> ort.InferenceSession:
    """An ``InferenceSession`` on the chosen provider; ``threads`` caps intra-op threads."""
    return _new_session(model, resolve_providers(provider), threads)


def _new_session(
    model: str | Path | bytes, providers: list[str], threads: int | None = None
) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # Idle intra-op threads would otherwise spin for a while after every run, taking
    # CPU from the renderer, the encoder and other sessions on a small machine.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    with_options = [(p, CUDA_OPTIONS) if p == CUDA else (p, {}) for p in providers]
    sess = ort.InferenceSession(source, sess_options=opts, providers=with_options)
    if providers[0] == CUDA and sess.get_providers()[0] != CUDA:
        # ONNX Runtime falls back to the CPU when the CUDA provider cannot start (missing
        # CUDA/cuDNN libraries, no device); a GPU path must not quietly run on the CPU.
        raise RuntimeError(
            "the CUDA execution provider did not start (are the CUDA 13 and cuDNN 9 "
            "libraries on the library path?); use provider 'cpu'"
        )
    log.debug("onnx session on %s", sess.get_providers())
    return sess


def session_metadata(sess: ort.InferenceSession) -> dict[str, str]:
    """The model's ``metadata_props`` as a dict (fps, sample rate, channel names, ...)."""
    return dict(sess.get_modelmeta().custom_metadata_map)


def load_error_reason(exc: BaseException) -> str:
    """The readable part of an ONNX Runtime load error (it prefixes a status and code)."""
    return str(exc).split(" : ")[-1].strip() or exc.__class__.__name__
