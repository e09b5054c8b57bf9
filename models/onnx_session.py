"""ONNX Runtime sessions with the execution provider picked at run time.

``provider="auto"`` takes CUDA when onnxruntime reports it *and* a session can
actually be created on it (a CUDA wheel on a machine without a GPU lists the
provider but fails to start it), else CPU. Model metadata is read back as a
dict so artifacts describe themselves.
"""

from __future__ import annotations

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


@lru_cache(maxsize=1)
def cuda_available() -> bool:
    """True when the CUDA execution provider is present and a GPU is visible."""
    if CUDA not in ort.get_available_providers():
        return False
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return False
    return any(Path("/dev").glob("nvidia[0-9]*"))


def resolve_providers(provider: Provider = "auto") -> list[str]:
    if provider == "cpu":
        return [CPU]
    if provider == "cuda":
        if CUDA not in ort.get_available_providers():
            raise RuntimeError("CUDA execution provider requested but onnxruntime has none")
        return [CUDA, CPU]
    return [CUDA, CPU] if cuda_available() else [CPU]


def create_session(
    model: str | Path | bytes,
    provider: Provider = "auto",
    threads: int | None = None,
) -> ort.InferenceSession:
    """An ``InferenceSession`` on the chosen provider; ``threads`` caps intra-op threads."""
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
    sess = ort.InferenceSession(source, sess_options=opts, providers=resolve_providers(provider))
    log.debug("onnx session on %s", sess.get_providers())
    return sess


def session_metadata(sess: ort.InferenceSession) -> dict[str, str]:
    """The model's ``metadata_props`` as a dict (fps, sample rate, channel names, ...)."""
    return dict(sess.get_modelmeta().custom_metadata_map)
