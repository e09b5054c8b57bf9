"""Export :class:`MotionNet` to a streaming ONNX graph that describes itself.

Graph inputs: ``mel`` float32 (1, T, 80) normalised log-mel and one ``state_i`` per conv
(float32 (K_i, C_i): its last K_i input frames); outputs: ``coeffs`` float32 (1, T, 16)
0..1, ``speech`` and ``closure`` float32 (1, T) probabilities, and ``state_out_i``.
Output ``t`` belongs to mel frame ``t - lookahead_frames`` of the stream. Metadata
carries everything the runtime needs (:mod:`models.motion.model` reads it back).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from headcast.models.audio import SUPPORTED_FPS
from headcast.models.audio.features import HOP_LENGTH, MEL_RATE, N_MELS, SAMPLE_RATE, WIN_LENGTH
from headcast.models.channels import MOUTH_CHANNELS
from headcast.models.motion.model import DEFAULT_FPS, LIVE_MAX_LOOKAHEAD_FRAMES
from headcast.models.training.net import CausalConv, MotionNet, NetConfig, count_parameters

FORMAT_VERSION = "1"
OPSET = 18


class _Streaming(nn.Module):
    """The net's streaming step, computed time-major for the exported graph.

    The batch axis is dropped (a stream is one sequence). Each causal conv becomes one
    matrix product of its ``kernel`` taps side by side, (T, kernel * C_in) @ (kernel *
    C_in, C_out) plus bias (a single Gemm), and each state is the conv's last input
    frames, (context, C_in). The weights stay the net's own tensors (the reshape
    is folded when a session loads), so an exported file still gives its weights back by
    name (``load_onnx_weights``). Same results as the net's channel-major forward; on
    the short chunks of live streaming (4 mel frames per 40 ms video frame) ONNX
    Runtime's CPU runs matrix products with pre-packed weights faster than convolutions.
    """

    def __init__(self, net: MotionNet) -> None:
        super().__init__()
        self.net = net

    @staticmethod
    def _conv(
        conv: CausalConv, x: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (T, C_in), state (context, C_in) -> (T, C_out), new state."""
        full = torch.cat([state, x])
        k, d = conv.conv.kernel_size[0], conv.conv.dilation[0]
        # Tap j reads frame t - (k - 1 - j) * d: constant offsets, no shape arithmetic.
        taps = [full[j * d : (j - k + 1) * d or None] for j in range(k)]
        weight = conv.conv.weight.permute(0, 2, 1).reshape(conv.conv.out_channels, -1)
        y = nn.functional.linear(torch.cat(taps, dim=1), weight, conv.conv.bias)
        return y, full[-conv.context :]

    @staticmethod
    def _pointwise(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, conv.weight[:, :, 0], conv.bias)

    def forward(self, mel: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        net = self.net
        x, s = self._conv(net.inp, mel[0], states[0])
        new_states = [s]
        x = net.act(x)
        for i, (conv, mix) in enumerate(zip(net._convs(), net._mixes(), strict=True)):
            h, s = self._conv(conv, x, states[i + 1])
            new_states.append(s)
            x = x + self._pointwise(mix, net.act(h))
        out = self._pointwise(net.head, net.act(x)).t()[None]
        coeffs, speech, closure = net.heads(out)
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
    states = tuple(torch.zeros(k, c) for c, k in shapes)
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
            do_constant_folding=False,  # keeps the weights under their names
            dynamo=False,
        )  # fmt: skip
    model = onnx.load(str(path))
    for key, value in metadata(net, extra_meta).items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save(model, str(path))
    return path


def reexport_onnx(src: Path, dst: Path) -> Path:
    """Write ``src``'s network again with this module's graph (same weights and
    metadata): a model exported by an earlier version gets the current streaming graph."""
    from headcast.models.training.train import load_onnx_weights

    meta = {p.key: p.value for p in onnx.load(str(src)).metadata_props}
    if meta.get("headcast.kind") != "motion" or "net_config" not in meta:
        raise ValueError(f"{src} is not a headcast motion model with its net_config")
    config: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(meta["net_config"]).items()
    }
    net = MotionNet(NetConfig(**config))
    load_onnx_weights(net, src)
    own = metadata(net)
    extra = {k: v for k, v in meta.items() if own.get(k) != v}
    return export_onnx(net, dst, extra)


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python -m headcast.models.training.export SRC.onnx DST.onnx")
    print(reexport_onnx(Path(sys.argv[1]), Path(sys.argv[2])))
