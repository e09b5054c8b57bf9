"""EDTalk's Audio2Lip: a mel window -> the 20 mouth-bank weights (torch only).

Input is one Wav2Lip-style mel window per video frame, float32 (N, 1, 80, 16)
(80 mel bins x 16 hops of 12.5 ms = 0.2 s, see :mod:`models.edtalk.mel`); output
float32 (N, 20), the mouth part of the generator's alpha (arXiv 2404.01647, Sec. 3.4).
"""

from __future__ import annotations

import torch
from torch import nn

from headcast.models.edtalk.nets.generator import MOUTH_DIM

MEL_BINS = 80
MEL_WINDOW = 16


class ConvBN(nn.Module):
    """Conv -> BatchNorm [-> + input] -> ReLU (upstream's audio ``Conv2d`` block)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel_size: int,
        stride: int | tuple[int, int],
        padding: int,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv2d(cin, cout, kernel_size, stride, padding), nn.BatchNorm2d(cout)
        )
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


class Audio2Lip(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        # (80, 16) -> (27, 16) -> (9, 6) -> (3, 3) -> (1, 1), Wav2Lip's audio encoder
        self.audio_encoder = nn.Sequential(
            ConvBN(1, 32, 3, 1, 1),
            ConvBN(32, 32, 3, 1, 1, residual=True),
            ConvBN(32, 32, 3, 1, 1, residual=True),
            ConvBN(32, 64, 3, (3, 1), 1),
            ConvBN(64, 64, 3, 1, 1, residual=True),
            ConvBN(64, 64, 3, 1, 1, residual=True),
            ConvBN(64, 128, 3, 3, 1),
            ConvBN(128, 128, 3, 1, 1, residual=True),
            ConvBN(128, 128, 3, 1, 1, residual=True),
            ConvBN(128, 256, 3, (3, 2), 1),
            ConvBN(256, 256, 3, 1, 1, residual=True),
            ConvBN(256, 512, 3, 1, 0),
            ConvBN(512, 512, 1, 1, 0),
        )
        self.mapping = nn.Linear(512, MOUTH_DIM)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel float32 (N, 1, 80, 16) -> mouth weights float32 (N, 20)."""
        return self.mapping(self.audio_encoder(mel).flatten(1))
