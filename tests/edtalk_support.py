"""Shared fixtures for the EDTalk tests: small random models saved in the upstream layout.

The published generator is 256x256; tests build the same architecture at 64x64
(4 decoder levels instead of 6: same modules, same names, less compute). Random
StyleGAN weights make the flow fields large and the decoder chaotic (float32 vs
float64 of one model differ by ~3 at 256^2), so the ToFlow weights are scaled by
0.1: smooth flows, as a trained model has, and float32 rounding then moves the
64x64 output by ~6e-5 — small enough for parity tests to mean something.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from headcast.models.edtalk.nets.audio2lip import Audio2Lip
from headcast.models.edtalk.nets.export import export_weights_dir
from headcast.models.edtalk.nets.generator import Generator

TEST_SIZE = 64
FLOW_WEIGHT_SCALE = 0.1


def small_generator(with_expression: bool = True, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    gen = Generator(TEST_SIZE, with_expression=with_expression).eval()
    with torch.no_grad():
        for name, p in gen.named_parameters():
            if name.startswith("dec.to_flows") and name.endswith("conv.weight"):
                p.mul_(FLOW_WEIGHT_SCALE)
            elif name.startswith("dec.fineadainresblock") and "mlp_" in name:
                p.mul_(0.5)  # non-trivial but bounded emotion modulation
            elif name.endswith(".bias") and p.abs().sum() == 0:
                p.normal_(0.0, 0.05)  # zero biases would hide bias-wiring mistakes
    return gen


def small_audio2lip(seed: int = 0) -> Audio2Lip:
    torch.manual_seed(seed)
    model = Audio2Lip().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
    return model


def save_upstream(path: Path, key: str, module: torch.nn.Module) -> Path:
    """Save as the upstream trainers do: ``{key: state_dict, "args": Namespace}``."""
    args = argparse.Namespace(size=TEST_SIZE, latent_dim_style=512, lr=0.002)
    torch.save({key: module.state_dict(), "args": args}, path)
    return path


@functools.lru_cache(maxsize=1)
def exported_weights_dir() -> Path:
    """A weights folder as a user would have it after ``python -m headcast.models.edtalk.nets.export``.

    Small random upstream-layout checkpoints, both generator variants, fp32 and fp16
    frame graphs, and two predefined expression vectors. Built once per test session.
    """
    root = Path(tempfile.mkdtemp(prefix="edtalk-weights-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    save_upstream(root / "EDTalk.pt", "gen", small_generator(True))
    save_upstream(root / "EDTalk_lip_pose.pt", "gen", small_generator(False, seed=1))
    save_upstream(root / "Audio2Lip.pt", "audio2lip", small_audio2lip())
    exp_dir = root / "predefined_exp_weights"
    exp_dir.mkdir()
    rng = np.random.default_rng(0)
    for name in ("neutral", "happy", "sad", "contempt"):
        np.save(exp_dir / f"{name}.npy", rng.normal(0, 1, (1, 10)).astype(np.float32))
    export_weights_dir(root, ("edtalk", "edtalk_lip_pose"))
    return root
