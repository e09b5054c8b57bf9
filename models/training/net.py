"""The audio-to-motion network: a causal dilated 1-D conv net over log-mel (torch).

Every convolution is *valid* (no padding) and looks only at past frames; the fixed
look-ahead comes from assigning the output computed at mel frame ``q`` to frame
``q - lookahead``. For streaming each conv keeps its last ``(kernel-1)*dilation`` input
frames as state, so a chunked run equals a whole-sequence run (the WaveNet / TCN
construction: van den Oord et al. 2016, Bai et al. 2018).

Outputs per mel frame (100 Hz): the 16 ARKit mouth channels (0..1, gated), a speech
activity probability and a lip-closure probability for /p b m/. Gating happens inside
the graph so the exported model is the whole computation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from headcast.models.channels import MOUTH_CHANNELS
from headcast.models.motion.closures import CLOSURE_PRESS, OPENING_CHANNELS, PRESS_CHANNELS

N_MOUTH = len(MOUTH_CHANNELS)
JAW = MOUTH_CHANNELS.index("jawOpen")
OPENING = tuple(MOUTH_CHANNELS.index(n) for n in OPENING_CHANNELS)
PRESS = tuple(MOUTH_CHANNELS.index(n) for n in PRESS_CHANNELS)
SPEECH_GATE = (0.15, 0.5)  # speech probability mapped linearly to gate 0..1


@dataclass(frozen=True)
class NetConfig:
    n_mels: int = 80
    channels: int = 160
    kernel: int = 3
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 1, 2, 4)
    lookahead_frames: int = 4  # mel frames (10 ms each)
    # Closure probability mapped linearly from lo (no effect) to hi (lips shut). Training
    # uses the identity (0, 1); the recipe then picks the mapping on a validation split
    # of the training voices (:func:`models.training.train.tune_closure_gate`).
    closure_gate: tuple[float, float] = (0.0, 1.0)

    @property
    def receptive_field(self) -> int:
        """Mel frames one output sees: the first conv plus every dilated one."""
        return self.kernel + sum((self.kernel - 1) * d for d in self.dilations)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class CausalConv(nn.Module):
    """Valid conv with an optional carried state of ``(kernel-1)*dilation`` frames."""

    context: int
    c_in: int

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, dilation=dilation)
        self.context = (kernel - 1) * dilation
        self.c_in = c_in

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, C_in, T) -> y (B, C_out, T) with state, (B, C_out, T - context) without."""
        full = x if state is None else torch.cat([state, x], dim=2)
        # The state is the last `context` frames, sliced from the end: a constant slice in
        # the exported graph, with no shape arithmetic to run for every streaming call.
        tail = full[:, :, -self.context :] if self.context else full[:, :, :0]
        return self.conv(full), tail


class MotionNet(nn.Module):
    """log-mel (B, T, n_mels) -> coeffs (B, T', 16), speech logit (B, T'), closure logit (B, T')."""

    def __init__(self, cfg: NetConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or NetConfig()
        self.cfg = cfg
        c = cfg.channels
        self.inp = CausalConv(cfg.n_mels, c, cfg.kernel)
        self.convs = nn.ModuleList(CausalConv(c, c, cfg.kernel, d) for d in cfg.dilations)
        self.mix = nn.ModuleList(nn.Conv1d(c, c, 1) for _ in cfg.dilations)
        self.head = nn.Conv1d(c, N_MOUTH + 2, 1)
        self.act = nn.ReLU()
        for m in self._mixes():
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def _convs(self) -> list[CausalConv]:
        return [m for m in self.convs if isinstance(m, CausalConv)]

    def _mixes(self) -> list[nn.Conv1d]:
        return [m for m in self.mix if isinstance(m, nn.Conv1d)]

    def state_shapes(self) -> list[tuple[int, int]]:
        """(channels, frames) of each conv's state, in forward order."""
        return [(self.inp.c_in, self.inp.context)] + [(m.c_in, m.context) for m in self._convs()]

    def trunk(
        self, mel: torch.Tensor, states: list[torch.Tensor] | None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = mel.transpose(1, 2)
        new_states = []
        x, s = self.inp(x, None if states is None else states[0])
        new_states.append(s)
        x = self.act(x)
        for i, (conv, mix) in enumerate(zip(self._convs(), self._mixes(), strict=True)):
            h, s = conv(x, None if states is None else states[i + 1])
            new_states.append(s)
            skip = x if states is not None else x[:, :, conv.context :]
            x = skip + mix(self.act(h))
        return self.head(self.act(x)), new_states

    def forward(
        self, mel: torch.Tensor, states: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Returns (coeffs 0..1, speech logit, closure logit, new states)."""
        out, new_states = self.trunk(mel, states)
        return (*self.heads(out), new_states)

    def heads(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The head's output (B, 16 + 2, T) -> coeffs 0..1 (B, T, 16) after the gates,
        speech logit (B, T), closure logit (B, T)."""
        raw = torch.sigmoid(out[:, :N_MOUTH])
        speech_logit, closure_logit = out[:, N_MOUTH], out[:, N_MOUTH + 1]
        coeffs = gate(
            raw, torch.sigmoid(speech_logit), torch.sigmoid(closure_logit), self.cfg.closure_gate
        )
        return coeffs.transpose(1, 2), speech_logit, closure_logit


def _ramp(p: torch.Tensor, lo_hi: tuple[float, float]) -> torch.Tensor:
    lo, hi = lo_hi
    return torch.clamp((p - lo) / (hi - lo), 0.0, 1.0)


def _channel_mask(channels: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """(N_MOUTH, 1): 1 at ``channels``, else 0 — one constant in the exported graph."""
    chosen = set(channels)
    return torch.tensor([[1.0 if i in chosen else 0.0] for i in range(N_MOUTH)], dtype=dtype)


def gate(
    raw: torch.Tensor,
    speech: torch.Tensor,
    closure: torch.Tensor,
    closure_gate: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """Silence and closure gating. raw: (B, 16, T) 0..1; speech, closure: (B, T) 0..1.

    Opening channels are scaled by ``speech_gate * (1 - closure_gate)`` (each a linear
    ramp of its probability), and a closure pushes mouthPress up, so a detected /p b m/
    shuts the lips even when the regression smears.
    """
    g_speech = _ramp(speech, SPEECH_GATE)
    closure = _ramp(closure, closure_gate)
    open_gate = (g_speech * (1.0 - closure)).unsqueeze(1)
    mask = _channel_mask(OPENING, raw.dtype)
    scale = 1.0 - mask + mask * open_gate
    out = raw * scale
    press_mask = _channel_mask(PRESS, raw.dtype)
    return torch.maximum(out, press_mask * (CLOSURE_PRESS * closure).unsqueeze(1))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
