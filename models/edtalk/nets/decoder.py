"""EDTalk's decoder: StyleGAN2-like synthesis that warps source features (torch only).

At every resolution 8..256 the decoder predicts a flow field and a mask (``ToFlow``),
warps the source feature map with ``grid_sample`` and blends it into its own
activations; RGB is accumulated through the ``ToRGB`` skips. In the full EDTalk model
each source feature first passes an emotion-enhancement module (EEM, arXiv 2404.01647
Sec. 3.3) conditioned on the 512-d expression latent.

The EEM's normalised branch depends on the source features only, so
:meth:`Synthesis.prepare` computes it once per avatar and :meth:`Synthesis.render`
reuses it every frame — same maths as :meth:`Synthesis.forward`, less work per frame.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from headcast.models.edtalk.nets.encoder import CHANNELS, IMAGE_SIZE, LATENT_DIM
from headcast.models.edtalk.nets.layers import (
    BLUR_KERNEL,
    ConvLayer,
    ModulatedConv2d,
    StyledConv,
    Upsample,
)


def base_grid(side: int, like: torch.Tensor) -> torch.Tensor:
    """Identity sampling grid (1, side, side, 2), (x, y) in [-1, 1] (upstream's linspace)."""
    xs = torch.linspace(-1.0, 1.0, side, dtype=like.dtype, device=like.device)
    gy, gx = torch.meshgrid(xs, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1)[None]


class ConstantInput(nn.Module):
    def __init__(self, channels: int, side: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, side, side))

    def forward(self, like: torch.Tensor) -> torch.Tensor:
        return self.input.expand(like.shape[0], -1, -1, -1)


class ToRGB(nn.Module):
    """1x1 conv to RGB (+ upsampled skip). ``upsample`` exists in every level's state dict."""

    def __init__(self, in_channels: int, upsample: bool = True) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(BLUR_KERNEL)
        self.conv = ConvLayer(in_channels, 3, 1)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class ToFlow(nn.Module):
    """Predicts (dx, dy, mask) and warps the source feature map.

    x: (B, C, H, H) decoder activations; feat: (B or 1, C, H, H) source features;
    skip: (B, 3, H/2, H/2) raw flow logits of the coarser level or None.
    Returns (warped * mask, warped * mask + x * (1 - mask), flow logits (B, 3, H, H)).
    """

    def __init__(self, in_channels: int, style_dim: int) -> None:
        super().__init__()
        self.upsample = Upsample(BLUR_KERNEL)
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(
        self,
        x: torch.Tensor,
        style: torch.Tensor,
        feat: torch.Tensor,
        skip: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.conv(x, style) + self.bias
        if skip is not None:
            logits = logits + self.upsample(skip)
        # tanh-bounded offsets added to the identity grid, as upstream
        grid = torch.tanh(logits[:, 0:2]).permute(0, 2, 3, 1) + base_grid(x.shape[2], x)
        mask = torch.sigmoid(logits[:, 2:3])
        # one avatar's features (batch 1) serve a batch of frames
        feat = feat.expand(x.shape[0], -1, -1, -1)
        # align_corners=False: grid_sample's default since torch 1.3, which upstream relies on
        warped = F.grid_sample(
            feat, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        warped = warped * mask
        return warped, warped + x * (1.0 - mask), logits


class ADAIN(nn.Module):
    """Instance norm whose scale and shift come from a latent code (B, feature_dim)."""

    HIDDEN = 128

    def __init__(self, channels: int, feature_dim: int) -> None:
        super().__init__()
        self.param_free_norm = nn.InstanceNorm2d(channels, affine=False)
        self.mlp_shared = nn.Sequential(nn.Linear(feature_dim, self.HIDDEN), nn.ReLU())
        self.mlp_gamma = nn.Linear(self.HIDDEN, channels)
        self.mlp_beta = nn.Linear(self.HIDDEN, channels)

    def affine(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (B, feature_dim) -> gamma, beta each (B, C, 1, 1)."""
        h = self.mlp_shared(z.flatten(1))
        return self.mlp_gamma(h)[:, :, None, None], self.mlp_beta(h)[:, :, None, None]

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.affine(z)
        return self.param_free_norm(x) * (1.0 + gamma) + beta


class EEM(nn.Module):
    """Emotion-enhancement module: residual ADAIN on a source feature map.

    Upstream computes a first branch (``conv1``/``norm1``) and then overwrites its
    result with the second, so the trained weights of ``conv1``/``norm1`` never
    influence the output. They are kept so checkpoints load strictly, and skipped.
    """

    def __init__(self, channels: int, feature_dim: int = LATENT_DIM) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.norm1 = ADAIN(channels, feature_dim)
        self.norm2 = ADAIN(channels, feature_dim)

    def normalize(self, feat: torch.Tensor) -> torch.Tensor:
        """The z-independent part: instance-normalised ``conv2(feat)``, same shape as feat."""
        return self.norm2.param_free_norm(self.conv2(feat))

    def modulate(self, feat: torch.Tensor, normed: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.norm2.affine(z)
        return feat + normed * (1.0 + gamma) + beta

    def forward(self, feat: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.modulate(feat, self.normalize(feat), z)


class Synthesis(nn.Module):
    """The decoder. ``with_eem`` selects EDTalk.pt (True) or EDTalk_lip_pose.pt (False)."""

    def __init__(
        self, size: int = IMAGE_SIZE, style_dim: int = LATENT_DIM, with_eem: bool = True
    ) -> None:
        super().__init__()
        self.size = size
        self.with_eem = with_eem
        log_size = int(math.log2(size))
        self.input = ConstantInput(CHANNELS[4])
        self.conv1 = StyledConv(CHANNELS[4], CHANNELS[4], 3, style_dim)
        # to_rgb1 and the empty ``upsamples`` are unused upstream; kept for key parity
        self.to_rgb1 = ToRGB(CHANNELS[4], upsample=False)
        self.convs = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.to_flows = nn.ModuleList()
        if with_eem:
            self.fineadainresblock = nn.ModuleList()
        in_ch = CHANNELS[4]
        for i in range(3, log_size + 1):
            out_ch = CHANNELS[2**i]
            self.convs.append(StyledConv(in_ch, out_ch, 3, style_dim, upsample=True))
            self.convs.append(StyledConv(out_ch, out_ch, 3, style_dim))
            self.to_rgbs.append(ToRGB(out_ch))
            self.to_flows.append(ToFlow(out_ch, style_dim))
            if with_eem:
                self.fineadainresblock.append(EEM(out_ch, style_dim))
            in_ch = out_ch

    def prepare(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per-avatar EEM cache: one normalised map per source feature (empty without EEM)."""
        if not self.with_eem:
            return []
        eems: list[EEM] = list(self.fineadainresblock)  # type: ignore[arg-type]
        return [eem.normalize(f) for eem, f in zip(eems, feats, strict=True)]

    def render(
        self,
        latent: torch.Tensor,
        feats: list[torch.Tensor],
        normed: list[torch.Tensor],
        exp_latent: torch.Tensor | None,
    ) -> torch.Tensor:
        """latent (B, 512), source feats, EEM cache, exp_latent (B, 512) -> image (B, 3, S, S).

        Every styled layer gets the same latent (upstream repeats one code n_latent times).
        """
        out = self.conv1(self.input(latent), latent)
        skip_rgb: torch.Tensor | None = None
        skip_flow: torch.Tensor | None = None
        for level, feat in enumerate(feats):
            out = self.convs[2 * level](out, latent)
            out = self.convs[2 * level + 1](out, latent)
            if self.with_eem:
                if exp_latent is None:
                    raise ValueError("the EEM decoder needs an expression latent")
                eem: EEM = self.fineadainresblock[level]  # type: ignore[assignment]
                feat = eem.modulate(feat, normed[level], exp_latent)
            warped, out, skip_flow = self.to_flows[level](out, latent, feat, skip_flow)
            skip_rgb = self.to_rgbs[level](warped, skip_rgb)
        assert skip_rgb is not None
        return skip_rgb

    def forward(
        self, latent: torch.Tensor, feats: list[torch.Tensor], exp_latent: torch.Tensor | None
    ) -> torch.Tensor:
        return self.render(latent, feats, self.prepare(feats), exp_latent)
