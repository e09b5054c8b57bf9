"""EDTalk's identity/motion encoder (LIA's appearance encoder; torch only).

One image float32 (B, 3, 256, 256) in [-1, 1] gives a latent code float32 (B, 512)
and the multi-scale source features the decoder warps (arXiv 2404.01647, Sec. 3.1).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from headcast.models.edtalk.nets.layers import ConvLayer, EqualConv2d, ResBlock

IMAGE_SIZE = 256
LATENT_DIM = 512

# Feature channels per spatial resolution (StyleGAN2's table, channel_multiplier=1).
CHANNELS: dict[int, int] = {
    4: 512,
    8: 512,
    16: 512,
    32: 512,
    64: 256,
    128: 128,
    256: 64,
    512: 32,
    1024: 16,
}


def feature_shapes(size: int = IMAGE_SIZE) -> list[tuple[int, int]]:
    """(channels, side) of the decoder's source features, coarse to fine: 8x8 .. size."""
    return [(CHANNELS[2**i], 2**i) for i in range(3, int(math.log2(size)) + 1)]


class EncoderApp(nn.Module):
    """A 1x1 stem, ``log2(size) - 2`` downsampling ResBlocks, then a 4x4 conv to the latent."""

    def __init__(self, size: int = IMAGE_SIZE, latent_dim: int = LATENT_DIM) -> None:
        super().__init__()
        log_size = int(math.log2(size))
        self.convs = nn.ModuleList([ConvLayer(3, CHANNELS[size], 1)])
        in_ch = CHANNELS[size]
        for i in range(log_size, 2, -1):
            out_ch = CHANNELS[2 ** (i - 1)]
            self.convs.append(ResBlock(in_ch, out_ch))
            in_ch = out_ch
        self.convs.append(EqualConv2d(in_ch, latent_dim, 4, padding=0, bias=False))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x (B, 3, S, S) -> latent (B, 512), features [(B, C_l, 8*2^l, 8*2^l)], coarse first.

        The features are every intermediate map from 8x8 up to full size, i.e. all
        outputs except the 1x1 latent and the 4x4 map, in reverse order.
        """
        outs = []
        h = x
        for conv in self.convs:
            h = conv(h)
            outs.append(h)
        return outs[-1].flatten(1), outs[::-1][2:]


class Encoder(nn.Module):
    """Upstream wraps the appearance network as ``enc.net_app``; kept for key names."""

    def __init__(self, size: int = IMAGE_SIZE, latent_dim: int = LATENT_DIM) -> None:
        super().__init__()
        self.net_app = EncoderApp(size, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.net_app(x)
