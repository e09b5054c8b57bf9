"""Export :class:`MotionNet` to a streaming ONNX graph that describes itself.

Graph inputs: ``mel`` float32 (1, T, 80) normalised log-mel and one ``state_i`` per conv
(float32 (1, C_i, K_i)); outputs: ``coeffs`` float32 (1, T, 16) 0..1, ``speech`` and
``closure`` float32 (1, T) probabilities, and ``state_out_i``. Output ``t`` belongs to
mel frame ``t - lookahead_frames`` of the stream. Metadata carries everything the
runtime needs (:mod:`models.motion.model` reads it back).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from headcast.models.audio import SUPPORTED_FPS
from headcast.models.audio.features import HOP_LENGTH, MEL_RATE, N_MELS, SAMPLE_RATE, WIN_LENGTH
from headcast.models.channels import MOUTH_CHANNELS
from headcast.models.motion.model import DEFAULT_FPS, LIVE_MAX_LOOKAHEAD_FRAMES
from headcast.models.training.net import MotionNet, count_parameters

FORMAT_VERSION = "1"
OPSET = 18


class _Streaming(nn.Module):
    def __init__(self, net: MotionNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, mel: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        coeffs, speech, closure, new_states = self.net(mel, list(states))
        return (coeffs, torch.sigmoid(speech), torch.sigmoid(closure), *new_states)


def metadata(net: MotionNet, extra: dict[str, str] | None = None) -> dict[str, str]:
    cfg = net.cfg
    meta = {
        "headcast.kind": "motion",
        "headcast.format": FORMAT_VERSION,
        "names": ",".join(MOUTH_CHANNELS),
        "sample_rate": str(SAMPLE_RATE),
        "mel_rate": str(MEL_RATE),
        "n_mels": str(N_MELS),
        "hop_length": str(HOP_LENGTH),
        "win_length": str(WIN_LENGTH),
        "lookahead_frames": str(cfg.lookahead_frames),
        # Audio past a frame's time the model needs: its look-ahead plus half a window.
        "lookahead_s": f"{(cfg.lookahead_frames * HOP_LENGTH + WIN_LENGTH // 2) / SAMPLE_RATE:.6f}",
        "receptive_field": str(cfg.receptive_field),
        # "true": a live model (look-ahead within LIVE_MAX_LOOKAHEAD_FRAMES); "false": one
        # that reads further ahead, meant for files (it still streams, just later).
        "causal": "true" if cfg.lookahead_frames <= LIVE_MAX_LOOKAHEAD_FRAMES else "false",
        # The graph runs at the mel rate (100 Hz); frames are taken from it at any of
        # these rates when the model is loaded (25 unless asked).
        "fps": str(DEFAULT_FPS),
        "fps_supported": ",".join(str(f) for f in SUPPORTED_FPS),
        "parameters": str(count_parameters(net)),
        "net_config": json.dumps(cfg.to_dict()),
    }
    meta.update(extra or {})
    return meta


def export_onnx(net: MotionNet, path: Path, extra_meta: dict[str, str] | None = None) -> Path:
    """Write the streaming graph with metadata to ``path``; returns ``path``."""
    net = net.eval()
    wrapper = _Streaming(net)
    shapes = net.state_shapes()
    mel = torch.zeros(1, 16, net.cfg.n_mels)
    states = tuple(torch.zeros(1, c, k) for c, k in shapes)
    in_names = ["mel"] + [f"state_{i}" for i in range(len(shapes))]
    out_names = ["coeffs", "speech", "closure"] + [f"state_out_{i}" for i in range(len(shapes))]
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # The gate's channel masks are meant to be constants of the trace.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            wrapper,
            (mel, *states),
            str(path),
            input_names=in_names,
            output_names=out_names,
            dynamic_axes={"mel": {1: "frames"}, "coeffs": {1: "frames"}, "speech": {1: "frames"},
                          "closure": {1: "frames"}},
            opset_version=OPSET,
            dynamo=False,
        )  # fmt: skip
    model = onnx.load(str(path))
    for key, value in metadata(net, extra_meta).items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save(model, str(path))
    return path
