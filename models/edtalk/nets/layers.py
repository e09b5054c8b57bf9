"""StyleGAN2 building blocks as EDTalk uses them (torch only; training/export side).

EDTalk (arXiv 2404.01647) reuses LIA's encoder and StyleGAN2-style decoder. Module
and parameter names here follow the upstream ones exactly — including buffers such
as the blur ``kernel`` — so the published checkpoints load with ``strict=True``.

Two deliberate departures from the upstream *implementation* (not the maths):

* ``upfirdn2d`` is written with reshape/pad and a depthwise ``conv2d`` whose batch
  and channel dimensions stay symbolic, so it exports to plain ONNX ops.
* :class:`ModulatedConv2d` scales activations instead of building one weight per
  sample (StyleGAN2's "non-fused" form). Convolution is linear, so
  ``conv(x * s, w) * d == conv(x, w * s * d)``; the exported graph then has static
  weights and a dynamic batch, which grouped per-sample convolutions would not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

BLUR_KERNEL: tuple[int, ...] = (1, 3, 3, 1)
LEAKY_SLOPE = 0.2
# StyleGAN2 rescales leaky-ReLU outputs by sqrt(2) to keep unit variance.
LEAKY_GAIN = math.sqrt(2.0)


def make_kernel(taps: Sequence[int]) -> torch.Tensor:
    """Separable FIR taps -> float32 (k, k) kernel normalised to sum 1."""
    k = torch.tensor(taps, dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    return k / k.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int, pad: tuple[int, int]) -> torch.Tensor:
    """Zero-insert upsample by ``up``, pad, then FIR-filter each channel.

    x: float (B, C, H, W); kernel: (kh, kw); returns (B, C, H*up + p0 + p1 - kh + 1, ...).
    Only the non-negative paddings EDTalk uses are supported (no cropping, no downsample).
    """
    pad0, pad1 = pad
    if pad0 < 0 or pad1 < 0:
        raise ValueError(f"negative padding {pad} is not used by EDTalk")
    # Channels and sides are fixed by the architecture; as Python ints they export as
    # constants, which the depthwise kernel's shape needs (only the batch is dynamic).
    channels, height, width = int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
    if up > 1:
        x = x.reshape(-1, channels, height, 1, width, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(-1, channels, height * up, width * up)
    x = F.pad(x, [pad0, pad1, pad0, pad1])
    kh, kw = kernel.shape
    # upfirdn2d is a true convolution, conv2d a correlation: flip the taps.
    weight = torch.flip(kernel, [0, 1]).to(x.dtype).reshape(1, 1, kh, kw)
    return F.conv2d(x, weight.expand(channels, 1, kh, kw), groups=channels)


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x + bias, LEAKY_SLOPE) * LEAKY_GAIN


class FusedLeakyReLU(nn.Module):
    """Bias + leaky ReLU(0.2) * sqrt(2); ``bias``: (1, C, 1, 1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias)


class ScaledLeakyReLU(nn.Module):
    """Plain leaky ReLU(0.2) (upstream name kept; it does not rescale)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, LEAKY_SLOPE)


class Blur(nn.Module):
    """FIR low-pass with a persistent ``kernel`` buffer (it is in the checkpoints)."""

    kernel: torch.Tensor

    def __init__(self, taps: Sequence[int], pad: tuple[int, int], upsample_factor: int = 1):
        super().__init__()
        kernel = make_kernel(taps) * (upsample_factor**2 if upsample_factor > 1 else 1)
        self.register_buffer("kernel", kernel)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=1, pad=self.pad)


class Upsample(nn.Module):
    """2x zero-insert upsample + FIR, as StyleGAN2's skip-branch upsampler."""

    kernel: torch.Tensor

    def __init__(self, taps: Sequence[int], factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        kernel = make_kernel(taps) * factor**2
        self.register_buffer("kernel", kernel)
        p = kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class EqualConv2d(nn.Module):
    """Conv with equalised learning rate: weights stored N(0,1), scaled by 1/sqrt(fan_in)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.stride = stride
        self.padding = padding
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(
            x, self.weight * self.scale, bias=self.bias, stride=self.stride, padding=self.padding
        )


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate (EDTalk never uses its activation form)."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = 1.0 / math.sqrt(in_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, bias=self.bias)


class ConvLayer(nn.Sequential):
    """[Blur] -> EqualConv2d -> [activation]; indices match upstream ("0", "1", ...)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        downsample: bool = False,
        bias: bool = True,
        activate: bool = True,
    ) -> None:
        layers: list[nn.Module] = []
        if downsample:
            p = (len(BLUR_KERNEL) - 2) + (kernel_size - 1)
            layers.append(Blur(BLUR_KERNEL, pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(
            EqualConv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                bias=bias and not activate,
            )
        )
        if activate:
            layers.append(FusedLeakyReLU(out_channels) if bias else ScaledLeakyReLU())
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Downsampling residual block; output is divided by sqrt(2) to keep variance."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True)
        self.skip = ConvLayer(
            in_channels, out_channels, 1, downsample=True, activate=False, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2.0)


class ModulatedConv2d(nn.Module):
    """Style-modulated conv (StyleGAN2), optionally with a 2x transposed-conv upsample.

    x: (B, in, H, W), style: (B, style_dim) -> (B, out, H', W'); H' = 2H when upsampling.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.upsample = upsample
        self.demodulate = demodulate
        if upsample:
            p = (len(BLUR_KERNEL) - 2) - (kernel_size - 1)
            self.blur = Blur(BLUR_KERNEL, pad=((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(
            torch.randn(1, out_channels, in_channels, kernel_size, kernel_size)
        )
        # bias_init=1: styles start as identity scales.
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        s = self.modulation(style)  # (B, in)
        w = self.weight[0] * self.scale  # (out, in, k, k)
        x = x * s[:, :, None, None]
        if self.upsample:
            out = F.conv_transpose2d(x, w.transpose(0, 1), stride=2, padding=0)
            out = self.blur(out)
        else:
            out = F.conv2d(x, w, padding=self.padding)
        if self.demodulate:
            # sum_{i,k} (w[o,i,k] s_i)^2 = (s^2) @ (sum_k w^2)^T, per sample and output channel
            energy = (s * s) @ (w * w).sum(dim=(2, 3)).transpose(0, 1)
            out = out * torch.rsqrt(energy + 1e-8)[:, :, None, None]
        return out


class NoiseInjection(nn.Module):
    """Per-layer noise; EDTalk infers without noise, the weight is kept for loading."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class StyledConv(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        upsample: bool = False,
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channels, out_channels, kernel_size, style_dim, upsample=upsample
        )
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channels)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, style)))
