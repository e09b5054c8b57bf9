"""The CUDA execution provider: the same pixels as the CPU paths, and real batching.

Skipped where onnxruntime has no usable CUDA provider (the CI machine); run on a GPU
machine with ``pytest tests/test_cuda.py`` (``scripts/gpu-check.sh`` runs it with the
GPU benchmarks). Sessions run float32 in full precision (TF32 off, see
``models/onnx_session.py``). Tolerances: warp graph on CUDA vs the same graph on the CPU <= 1
grey level, vs the numpy reference <= 2 (the CPU tests' bar), vs the cv2 fast path <= 3
(cv2.remap rounds sample positions to 1/32 pixel); EDTalk frame graph vs
torch fp32 2e-3 (as on the CPU); fp16 0.25 max / 0.01 mean abs on [-1, 1] images (the
GPU runs half-precision kernels where the CPU provider computes in float32 and rounds;
measured on an H200: 0.16 max, 0.008 mean).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from headcast.models.onnx_session import CUDA, cuda_available

pytestmark = pytest.mark.skipif(not cuda_available(), reason="no usable CUDA provider")


# the coefficient sets of the CPU parity test (tests/test_render_warp.py), plus zeros
POSES = [
    {"jawOpen": 0.7, "mouthSmileLeft": 0.5, "headYaw": 12, "eyeBlinkLeft": 0.7},
    {"jawOpen": 1.0, "eyeBlinkRight": 1.0, "headYaw": -15, "browInnerUp": 1.0},
    {"headPitch": -10, "headRoll": 8, "jawOpen": 0.4, "headTx": 0.02, "mouthFunnel": 0.6},
    {"mouthPucker": 0.8, "mouthRollLower": 0.5, "eyeWideLeft": 1.0, "headRoll": -6},
    {},
]


def _coeff_rows() -> np.ndarray:
    from headcast.models.channels import from_mapping

    return np.stack([from_mapping(p) for p in POSES])


def _levels(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.mark.parametrize("size", [256, 512])
def test_warp_graph_on_cuda_matches_the_cpu_fast_path(pack512, pack256, size):
    from headcast.models.render.reference import render_reference
    from headcast.models.render.warp import WarpRenderer
    from headcast.models.render.warp_onnx import OnnxWarpRenderer

    pack = pack512 if size == 512 else pack256
    gpu = OnnxWarpRenderer(pack, provider="cuda")
    assert gpu.providers[0] == CUDA
    rows = _coeff_rows()
    out = gpu.render_batch(rows)
    assert out.shape == (len(rows), size, size, 3) and out.dtype == np.uint8
    cpu_graph = OnnxWarpRenderer(pack, provider="cpu").render_batch(rows)
    fast = WarpRenderer(pack)
    for row, on_cpu, c in zip(out, cpu_graph, rows, strict=True):
        graph, ref = _levels(row, on_cpu), _levels(row, render_reference(pack, c))
        fast_levels = _levels(row, fast.render(c))
        print(f"{size}: cuda vs cpu graph {graph}, vs numpy {ref}, vs fast path {fast_levels}")
        assert graph <= 1 and ref <= 2  # one definition, exact bilinear sampling
        # cv2.remap snaps sample positions to 1/32 pixel: up to a level more at sharp edges
        assert fast_levels <= 3
    # each row of a batch is the frame rendered alone; zeros give the portrait back
    assert _levels(out[2], gpu.render(rows[2])) <= 1
    assert np.array_equal(out[-1], pack.image)


def test_batcher_serves_concurrent_sessions_in_batches_on_cuda(pack256):
    from headcast.models.render.pool import RendererPool
    from headcast.models.render.warp_onnx import OnnxWarpRenderer
    from headcast.server.live.scheduler import BatchRenderer

    pool = RendererPool(lambda: OnnxWarpRenderer(pack256, provider="cuda"), max_instances=1)
    batcher = BatchRenderer(window_s=0.004)
    rows = np.concatenate([_coeff_rows(), _coeff_rows()[:3] * 0.5])
    got: dict[int, np.ndarray] = {}

    def session(i: int) -> None:
        for _ in range(5):
            got[i] = batcher.render(pool, rows[i])

    threads = [threading.Thread(target=session, args=(i,)) for i in range(len(rows))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    batcher.close()
    assert batcher.frames == 5 * len(rows)
    assert batcher.batches < batcher.frames  # frames of several sessions shared a call
    alone = OnnxWarpRenderer(pack256, provider="cuda")
    for i, c in enumerate(rows):
        assert _levels(got[i], alone.render(c)) <= 1


@pytest.fixture(scope="module")
def edtalk_root():
    from tests.edtalk_support import exported_weights_dir

    return exported_weights_dir()


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_edtalk_frame_graph_on_cuda_matches_torch(edtalk_root, precision):
    import torch

    from headcast.models.edtalk.files import frame_onnx, source_onnx
    from headcast.models.edtalk.nets.checkpoint import load_generator
    from headcast.models.onnx_session import create_session
    from tests.edtalk_support import TEST_SIZE

    gen = load_generator(edtalk_root / "EDTalk.pt")
    rng = np.random.default_rng(3)
    image = rng.uniform(-1, 1, (1, 3, TEST_SIZE, TEST_SIZE)).astype(np.float32)
    src = create_session(source_onnx(edtalk_root, "edtalk"), "cuda")
    assert src.get_providers()[0] == CUDA
    outs = src.run(None, {"image": image})
    named = {o.name: v for o, v in zip(src.get_outputs(), outs, strict=True)}
    alpha = named["alpha"] + rng.normal(0, 0.5, (3, gen.num_coeffs)).astype(np.float32)
    with torch.no_grad():
        latent, feats = gen.encode(torch.from_numpy(image))
        np.testing.assert_allclose(named["latent"], latent.numpy(), atol=1e-3, rtol=1e-3)
        ref = gen.decode(latent, feats, torch.from_numpy(alpha)).numpy()
    sess = create_session(frame_onnx(edtalk_root, "edtalk", precision), "cuda")
    assert sess.get_providers()[0] == CUDA
    inputs = {**{k: v for k, v in named.items() if k != "alpha"}, "alpha": alpha}
    got = sess.run(["image"], inputs)[0]
    err = np.abs(got - ref)
    print(f"cuda {precision}: max {err.max():.2e} mean {err.mean():.2e}")
    if precision == "fp32":
        assert err.max() < 2e-3, err.max()
    else:
        assert err.max() < 0.25 and err.mean() < 0.01, (err.max(), err.mean())


def test_edtalk_audio2lip_on_cuda_matches_torch(edtalk_root):
    import torch

    from headcast.models.edtalk.files import audio2lip_onnx
    from headcast.models.edtalk.nets.checkpoint import load_audio2lip
    from headcast.models.onnx_session import create_session

    model = load_audio2lip(edtalk_root / "Audio2Lip.pt")
    mel = np.random.default_rng(5).uniform(-4, 4, (7, 1, 80, 16)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(mel)).numpy()
    sess = create_session(audio2lip_onnx(edtalk_root), "cuda")
    assert sess.get_providers()[0] == CUDA
    np.testing.assert_allclose(sess.run(["mouth"], {"mel": mel})[0], ref, atol=1e-3, rtol=1e-3)


def test_requesting_cuda_never_silently_runs_on_the_cpu(pack256):
    from headcast.models.render.warp_onnx import OnnxWarpRenderer

    assert OnnxWarpRenderer(pack256, provider="auto").providers[0] == CUDA
