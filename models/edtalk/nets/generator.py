"""The EDTalk generator: encoder, orthogonal motion bases, decoder (torch only).

Motion is a point in a 512-d latent space spanned by learned bases (arXiv 2404.01647,
Sec. 3.2): 20 mouth, 6 pose and 10 expression directions. The bases are the columns
of Q from a QR decomposition of the stacked raw bases, mouth first, then pose, then
expression — so each bank is orthogonal to the ones before it, and a frame's latent is
``source_latent + alpha @ Q.T`` with ``alpha: (B, 36)`` the per-bank weights.

``with_expression=False`` builds the lip+pose model of ``EDTalk_lip_pose.pt``
(26 weights, no expression bank, no EEM).
"""

from __future__ import annotations

import torch
from torch import nn

from headcast.models.edtalk.nets.decoder import Synthesis
from headcast.models.edtalk.nets.encoder import IMAGE_SIZE, LATENT_DIM, Encoder
from headcast.models.edtalk.nets.layers import EqualLinear

MOUTH_DIM = 20
POSE_DIM = 6
EXP_DIM = 10
# Upstream adds this to the raw bases before QR; kept so Q matches theirs bit for bit.
QR_JITTER = 1e-8


class Direction(nn.Module):
    """Raw mouth+pose bases, float32 (512, 26) (upstream ``direction_lipnonlip``)."""

    def __init__(self, mouth_dim: int = MOUTH_DIM, pose_dim: int = POSE_DIM) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(LATENT_DIM, mouth_dim + pose_dim))


class DirectionExp(nn.Module):
    """Raw expression bases, float32 (512, 10) (upstream ``direction_exp``)."""

    def __init__(self, exp_dim: int = EXP_DIM) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(LATENT_DIM, exp_dim))


def _mlp(depth: int, out_dim: int) -> nn.Sequential:
    """``depth - 1`` 512->512 EqualLinear layers then 512->out_dim, no activations (as upstream)."""
    layers = [EqualLinear(LATENT_DIM, LATENT_DIM) for _ in range(depth - 1)]
    return nn.Sequential(*layers, EqualLinear(LATENT_DIM, out_dim))


class Generator(nn.Module):
    def __init__(self, size: int = IMAGE_SIZE, with_expression: bool = True) -> None:
        super().__init__()
        self.with_expression = with_expression
        self.enc = Encoder(size, LATENT_DIM)
        self.dec = Synthesis(size, LATENT_DIM, with_eem=with_expression)
        self.direction_lipnonlip = Direction()
        if with_expression:
            self.direction_exp = DirectionExp()
        # shared trunk + one head per bank: latent code -> bank weights
        self.fc = nn.Sequential(*[EqualLinear(LATENT_DIM, LATENT_DIM) for _ in range(4)])
        self.lip_fc = _mlp(3, MOUTH_DIM)
        self.pose_fc = _mlp(3, POSE_DIM)
        if with_expression:
            self.exp_fc = _mlp(3, EXP_DIM)

    @property
    def num_coeffs(self) -> int:
        """36 with the expression bank, 26 without."""
        return MOUTH_DIM + POSE_DIM + (EXP_DIM if self.with_expression else 0)

    def basis(self) -> torch.Tensor:
        """Orthonormal bases Q: float32 (512, num_coeffs), columns mouth | pose | expression."""
        raw: torch.Tensor = self.direction_lipnonlip.weight
        if self.with_expression:
            raw = torch.cat([raw, self.direction_exp.weight], dim=-1)
        q, _ = torch.linalg.qr(raw + QR_JITTER, mode="reduced")
        return q

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """image float32 (B, 3, 256, 256) in [-1, 1] -> latent (B, 512), source features."""
        return self.enc(image)

    def coeffs_of(self, latent: torch.Tensor) -> torch.Tensor:
        """Bank weights a driving image carries: latent (B, 512) -> alpha (B, num_coeffs)."""
        shared = self.fc(latent)
        heads = [self.lip_fc(shared), self.pose_fc(shared)]
        if self.with_expression:
            heads.append(self.exp_fc(shared))
        return torch.cat(heads, dim=-1)

    def motion(self, alpha: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """alpha (B, N), Q (512, N) -> (motion latent (B, 512), expression latent (B, 512)).

        The expression latent feeds the EEMs; it is the expression bank's share of the
        motion (zeros for the lip+pose model, whose decoder ignores it).
        """
        split = MOUTH_DIM + POSE_DIM
        return alpha @ q.T, alpha[:, split:] @ q[:, split:].T

    def decode(
        self,
        latent: torch.Tensor,
        feats: list[torch.Tensor],
        alpha: torch.Tensor,
        q: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Source latent (B, 512) + features + alpha (B, N) -> image float32 (B, 3, S, S), ~[-1, 1]."""
        q = self.basis() if q is None else q
        move, exp_latent = self.motion(alpha, q)
        return self.dec(latent + move, feats, exp_latent if self.with_expression else None)

    def forward(self, source: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """Animate ``source`` (B, 3, S, S) with bank weights ``alpha`` (B, N)."""
        latent, feats = self.encode(source)
        return self.decode(latent, feats, alpha)
