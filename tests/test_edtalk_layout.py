"""EDTalk in torch: upstream parameter names, bank order, and the export-friendly layers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from headcast.models.edtalk.nets.audio2lip import Audio2Lip
from headcast.models.edtalk.nets.encoder import feature_shapes
from headcast.models.edtalk.nets.generator import EXP_DIM, MOUTH_DIM, POSE_DIM, Generator
from headcast.models.edtalk.nets.layers import Blur, ModulatedConv2d, Upsample, make_kernel
from tests.edtalk_support import small_generator

UPSTREAM = json.loads(
    (Path(__file__).parent / "fixtures" / "edtalk_upstream_keys.json").read_text()
)["files"]


def shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize(
    ("entry", "build"),
    [
        ("EDTalk.pt:gen", lambda: Generator(256, with_expression=True)),
        ("EDTalk_lip_pose.pt:gen", lambda: Generator(256, with_expression=False)),
        ("Audio2Lip.pt:audio2lip", Audio2Lip),
    ],
)
def test_state_dict_matches_upstream_layout(entry, build):
    """Every key and shape of the published files, so ``strict=True`` loading can succeed."""
    ours = shapes(build())
    theirs = UPSTREAM[entry]
    assert sorted(set(theirs) - set(ours)) == []
    assert sorted(set(ours) - set(theirs)) == []
    assert {k: v for k, v in ours.items() if theirs[k] != v} == {}


def test_feature_shapes_at_256():
    assert feature_shapes(256) == [(512, 8), (512, 16), (512, 32), (256, 64), (128, 128), (64, 256)]


def test_banks_are_orthonormal_in_mouth_pose_expression_order():
    gen = small_generator()
    q = gen.basis().double()
    assert q.shape == (512, MOUTH_DIM + POSE_DIM + EXP_DIM)
    assert torch.allclose(q.T @ q, torch.eye(q.shape[1], dtype=torch.float64), atol=1e-5)
    # QR in bank order: the mouth columns span exactly the raw mouth bases ...
    raw_mouth = gen.direction_lipnonlip.weight[:, :MOUTH_DIM].double()
    proj = q[:, :MOUTH_DIM] @ (q[:, :MOUTH_DIM].T @ raw_mouth)
    assert torch.allclose(proj, raw_mouth, atol=1e-4)
    # ... and the expression bank is orthogonal to every raw mouth and pose basis
    raw_mp = gen.direction_lipnonlip.weight.double()
    assert (q[:, MOUTH_DIM + POSE_DIM :].T @ raw_mp).abs().max() < 1e-4


def _fused_modconv(conv: ModulatedConv2d, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """StyleGAN2's per-sample-weight form, written out as the reference."""
    out = []
    for b in range(x.shape[0]):
        s = conv.modulation(style[b : b + 1])[0]
        w = conv.weight[0] * conv.scale * s[None, :, None, None]
        if conv.demodulate:
            w = w * torch.rsqrt((w * w).sum(dim=(1, 2, 3)) + 1e-8)[:, None, None, None]
        if conv.upsample:
            y = F.conv_transpose2d(x[b : b + 1], w.transpose(0, 1), stride=2)
            out.append(conv.blur(y))
        else:
            out.append(F.conv2d(x[b : b + 1], w, padding=conv.padding))
    return torch.cat(out)


@pytest.mark.parametrize("upsample", [False, True])
@pytest.mark.parametrize("demodulate", [False, True])
def test_activation_modulation_equals_weight_modulation(upsample, demodulate):
    torch.manual_seed(1)
    conv = ModulatedConv2d(8, 6, 3, 16, demodulate=demodulate, upsample=upsample)
    x, style = torch.randn(3, 8, 5, 5), torch.randn(3, 16)
    with torch.no_grad():
        torch.testing.assert_close(
            conv(x, style), _fused_modconv(conv, x, style), atol=1e-5, rtol=1e-5
        )


def test_upsample_is_zero_insert_then_fir():
    torch.manual_seed(2)
    x = torch.randn(2, 3, 4, 4)
    up = Upsample((1, 3, 3, 1))
    zeros = torch.zeros(2, 3, 8, 8)
    zeros[:, :, ::2, ::2] = x
    k = make_kernel((1, 3, 3, 1)) * 4
    ref = F.conv2d(F.pad(zeros, [2, 1, 2, 1]), k.flip(0, 1).expand(3, 1, 4, 4), groups=3)
    torch.testing.assert_close(up(x), ref)
    assert up(x).shape == (2, 3, 8, 8)
    # the low-pass keeps a constant image constant away from the borders
    flat = Blur((1, 3, 3, 1), pad=(1, 2))(torch.ones(1, 1, 8, 8))
    torch.testing.assert_close(flat[..., 2:-2, 2:-2], torch.ones(1, 1, 4, 4))


def test_small_generator_runs_and_uses_every_bank():
    gen = small_generator()
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        latent, feats = gen.encode(image)
        alpha = gen.coeffs_of(latent)
        base = gen.decode(latent, feats, alpha)
        assert base.shape == (1, 3, 64, 64) and torch.isfinite(base).all()
        for bank in (slice(0, 20), slice(20, 26), slice(26, 36)):
            moved = alpha.clone()
            moved[:, bank] += 1.0
            assert (gen.decode(latent, feats, moved) - base).abs().mean() > 1e-3
    assert latent.shape == (1, 512)
