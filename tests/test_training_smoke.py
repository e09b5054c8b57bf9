"""The training recipe end to end in seconds, and torch-vs-ONNX parity of the export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.audio.features import silence_feature  # noqa: E402
from models.motion import infer, load_motion_model  # noqa: E402
from models.training.export import export_onnx  # noqa: E402
from models.training.net import MotionNet, NetConfig  # noqa: E402
from models.training.synth import available_engines  # noqa: E402
from server.cli import main  # noqa: E402

PARITY_TOLERANCE = 1e-4  # float32 torch vs ONNX Runtime on 0..1 outputs


def test_exported_graph_matches_torch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = MotionNet(NetConfig(channels=32)).eval()
    path = export_onnx(net, tmp_path / "m.onnx")
    model = load_motion_model(path, provider="cpu")
    rf = net.cfg.receptive_field
    rng = np.random.default_rng(0)
    feats = rng.uniform(-3, 0.5, (120, 80)).astype(np.float32)
    # torch, whole sequence with the stream-start padding (valid convs, no state)...
    pad = np.tile(silence_feature(), (rf - 1, 1))
    with torch.no_grad():
        ref, _, _, _ = net(torch.from_numpy(np.concatenate([pad, feats])[None]))
    # ...equals ONNX run in chunks from the washed-in state.
    states = model.initial_states()
    outs = []
    for a in range(0, 120, 37):
        coeffs, _, states = model.run(feats[a : a + 37], states)
        outs.append(coeffs)
    np.testing.assert_allclose(np.concatenate(outs), ref[0].numpy(), atol=PARITY_TOLERANCE)


@pytest.mark.skipif(not all(available_engines().values()), reason="speech engines not installed")
def test_tiny_training_run_produces_a_loadable_model(tmp_path: Path) -> None:
    out = tmp_path / "tiny.onnx"
    assert main(["train", "motion", "--tiny", "-o", str(out)]) == 0
    model = load_motion_model(out, provider="cpu")
    assert model.metadata["train_command"].startswith("headcast train motion")
    frames = infer(model, np.zeros(16_000, np.float32))
    assert len(frames) == 25 and np.isfinite(frames.coeffs).all()


def test_bad_training_flags_are_user_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "motion", "--tiny", "--lookahead-ms", "45"]) == 2
    assert "multiple of 10" in capsys.readouterr().err
