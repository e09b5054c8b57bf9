"""torch vs ONNX Runtime, stage by stage, on random upstream-layout weights.

Tolerances (images are in [-1, 1]; the test model's float32 rounding noise alone is
~6e-5, see tests/edtalk_support.py):
  source graph   latent, features, alpha: 1e-4 abs + 1e-4 rel; EEM cache: 1e-3 abs
  frame fp32     image: 2e-3 abs max
  frame fp16     image: 0.15 abs max, 0.01 abs mean (half precision through ~15 conv layers)
  audio2lip      mouth weights: 1e-4 abs + 1e-4 rel
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from headcast.models.edtalk.files import audio2lip_onnx, frame_onnx, source_onnx
from headcast.models.edtalk.nets.checkpoint import load_audio2lip, load_generator
from headcast.models.onnx_session import create_session, session_metadata
from tests.edtalk_support import TEST_SIZE, exported_weights_dir


@pytest.fixture(scope="module")
def root():
    return exported_weights_dir()


@pytest.fixture(scope="module", params=["edtalk", "edtalk_lip_pose"])
def variant(request, root):
    gen = load_generator(
        root / {"edtalk": "EDTalk.pt", "edtalk_lip_pose": "EDTalk_lip_pose.pt"}[request.param]
    )
    rng = np.random.default_rng(3)
    image = rng.uniform(-1, 1, (1, 3, TEST_SIZE, TEST_SIZE)).astype(np.float32)
    src = create_session(source_onnx(root, request.param), "cpu")
    outs = src.run(None, {"image": image})
    named = {o.name: v for o, v in zip(src.get_outputs(), outs, strict=True)}
    return request.param, gen, image, named


def test_source_graph_matches_torch(variant):
    _, gen, image, named = variant
    with torch.no_grad():
        latent, feats = gen.encode(torch.from_numpy(image))
        normed = gen.dec.prepare(feats)
        alpha = gen.coeffs_of(latent)
    np.testing.assert_allclose(named["latent"], latent.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(named["alpha"], alpha.numpy(), atol=1e-4, rtol=1e-4)
    for i, f in enumerate(feats):
        np.testing.assert_allclose(named[f"feat{i}"], f.numpy(), atol=1e-4, rtol=1e-4)
    for i, n in enumerate(normed):
        np.testing.assert_allclose(named[f"normed{i}"], n.numpy(), atol=1e-3)
    assert len(normed) == (len(feats) if gen.with_expression else 0)


def _frame_inputs(named, alpha):
    return {**{k: v for k, v in named.items() if k != "alpha"}, "alpha": alpha}


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_frame_graph_matches_torch(root, variant, precision):
    name, gen, image, named = variant
    rng = np.random.default_rng(4)
    # around the portrait's own weights, as serving uses them, batch of 3 on batch-1 features
    alpha = named["alpha"] + rng.normal(0, 0.5, (3, gen.num_coeffs)).astype(np.float32)
    with torch.no_grad():
        latent, feats = gen.encode(torch.from_numpy(image))
        ref = gen.decode(latent, feats, torch.from_numpy(alpha)).numpy()
    sess = create_session(frame_onnx(root, name, precision), "cpu")
    got = sess.run(["image"], _frame_inputs(named, alpha))[0]
    assert got.shape == ref.shape == (3, 3, TEST_SIZE, TEST_SIZE) and got.dtype == np.float32
    err = np.abs(got - ref)
    if precision == "fp32":
        assert err.max() < 2e-3, err.max()
    else:
        assert err.max() < 0.15 and err.mean() < 0.01, (err.max(), err.mean())


def test_batch_rows_are_independent(root, variant):
    name, gen, _, named = variant
    sess = create_session(frame_onnx(root, name, "fp32"), "cpu")
    alpha = np.stack([named["alpha"][0], named["alpha"][0] + 0.7]).astype(np.float32)
    both = sess.run(["image"], _frame_inputs(named, alpha))[0]
    second = sess.run(["image"], _frame_inputs(named, alpha[1:]))[0]
    np.testing.assert_allclose(both[1:], second, atol=1e-5)
    assert np.abs(both[0] - both[1]).mean() > 1e-3


def test_metadata_describes_the_graphs(root):
    meta = session_metadata(create_session(frame_onnx(root, "edtalk", "fp16"), "cpu"))
    assert meta["headcast.model"] == "edtalk" and meta["headcast.precision"] == "fp16"
    assert meta["headcast.num_coeffs"] == "36" and meta["headcast.image_size"] == str(TEST_SIZE)
    assert (meta["headcast.mouth"], meta["headcast.pose"], meta["headcast.expression"]) == (
        "0:20",
        "20:26",
        "26:36",
    )
    assert meta["headcast.cached_inputs"].split(",")[:2] == ["latent", "feat0"]
    assert len(meta["headcast.weights_sha256"]) == 64
    lp = session_metadata(create_session(source_onnx(root, "edtalk_lip_pose"), "cpu"))
    assert lp["headcast.num_coeffs"] == "26" and "normed" not in lp["headcast.cached_inputs"]
    a2l = session_metadata(create_session(audio2lip_onnx(root), "cpu"))
    assert (a2l["headcast.fps"], a2l["headcast.sample_rate"], a2l["headcast.mel_window"]) == (
        "25",
        "16000",
        "16",
    )


def test_audio2lip_matches_torch(root):
    model = load_audio2lip(root / "Audio2Lip.pt")
    mel = np.random.default_rng(5).uniform(-4, 4, (7, 1, 80, 16)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(mel)).numpy()
    got = create_session(audio2lip_onnx(root), "cpu").run(["mouth"], {"mel": mel})[0]
    assert got.shape == (7, 20)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
