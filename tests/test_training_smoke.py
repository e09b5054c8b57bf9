"""The training recipe end to end in seconds, and torch-vs-ONNX parity of the export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from headcast.models.audio.features import silence_feature  # noqa: E402
from headcast.models.motion import infer, load_motion_model  # noqa: E402
from headcast.models.training.export import export_onnx  # noqa: E402
from headcast.models.training.net import MotionNet, NetConfig  # noqa: E402
from headcast.models.training.synth import available_engines  # noqa: E402
from headcast.server.cli import main  # noqa: E402
from tests.render_offline_support import write_foreign_onnx  # noqa: E402

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
    # The states are constant slices: no shape arithmetic runs on every streaming call.
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "Shape" not in ops, ops


@pytest.mark.skipif(not all(available_engines().values()), reason="speech engines not installed")
def test_tiny_training_run_produces_a_loadable_model(tmp_path: Path) -> None:
    out = tmp_path / "tiny.onnx"
    assert main(["train", "motion", "--tiny", "-o", str(out)]) == 0
    model = load_motion_model(out, provider="cpu")
    assert model.metadata["train_command"].startswith("headcast train motion")
    # The smoke run goes through the recorded-speech path too (a few aligned prompts of
    # the English speaker and of one whose words espeak-ng phonemises).
    assert model.metadata["train_recorded"].startswith("asterisk:allison, asterisk:june prompts")
    assert "held out: " in model.metadata["train_recorded"]
    assert model.metadata["causal"] == "true"
    frames = infer(model, np.zeros(16_000, np.float32))
    assert len(frames) == 25 and np.isfinite(frames.coeffs).all()


def test_bad_training_flags_are_user_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "motion", "--tiny", "--lookahead-ms", "45"]) == 2
    assert "multiple of 10" in capsys.readouterr().err
    # The held-out speaker is for evaluation only; an unknown one is a typo.
    for speakers in ("en,ru", "en,de"):
        assert main(["train", "motion", "--tiny", "--speakers", speakers]) == 2
        err = capsys.readouterr().err
        assert "not a training speaker" in err and "Traceback" not in err
    assert main(["train", "motion", "--tiny", "--warp", "0.5"]) == 2
    assert "warp" in capsys.readouterr().err
    assert main(["train", "motion", "--tiny", "--freq-mask", "40"]) == 2
    err = capsys.readouterr().err
    assert "freq_mask" in err and "Traceback" not in err
    assert main(["train", "motion", "--tiny", "--game-clips", "0"]) == 2
    err = capsys.readouterr().err
    assert "game_clips" in err and "Traceback" not in err


def test_closure_weight_and_recorded_share_reach_the_recipe(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from headcast.models.training.train import TrainConfig, loss_fn

    net = MotionNet(NetConfig(channels=8))
    rf = net.cfg.receptive_field
    batch = {
        "mel": torch.zeros(1, rf - 1 + 10, 80),
        "coeffs": torch.zeros(1, 10, 16),
        "speech": torch.ones(1, 10),
        "closure": torch.ones(1, 10),  # all inside a /p b m/ closure
    }
    _, low = loss_fn(net, batch, closure_pos_weight=1.0)
    _, high = loss_fn(net, batch, closure_pos_weight=6.0)
    assert high["closure"] == pytest.approx(6.0 * low["closure"], rel=1e-5)
    cfg = TrainConfig(closure_pos_weight=6.0, real_share=0.5)
    assert (cfg.closure_pos_weight, cfg.real_share) == (6.0, 0.5)
    assert main(["train", "motion", "--tiny", "--real-share", "1.5"]) == 2
    assert "real_share" in capsys.readouterr().err


def test_closure_gate_ramp_shuts_the_lips_sooner() -> None:
    from headcast.models.training.net import JAW, N_MOUTH, PRESS, gate

    raw = torch.ones(1, N_MOUTH, 3)
    raw[:, list(PRESS)] = 0.0
    speech = torch.ones(1, 3)
    closure = torch.tensor([[0.1, 0.4, 0.6]])
    identity = gate(raw, speech, closure)  # the training default (0, 1)
    np.testing.assert_allclose(identity[0, JAW].numpy(), [0.9, 0.6, 0.4], atol=1e-6)
    sharp = gate(raw, speech, closure, (0.15, 0.5))
    # Below lo the closure head has no effect; from hi on the lips are shut and pressed.
    np.testing.assert_allclose(sharp[0, JAW].numpy(), [1.0, 2 / 7, 0.0], atol=1e-6)
    np.testing.assert_allclose(sharp[0, PRESS[0]].numpy(), [0.0, 0.25, 0.35], atol=1e-6)


def test_gate_choice_balances_the_two_targets() -> None:
    from headcast.models.training.train import choose_gate

    results = {
        (0.3, 1.0): {"r": 0.82, "closure": 0.40},  # best r, few closures
        (0.0, 0.8): {"r": 0.79, "closure": 0.74},  # both near 87 % of their targets
        (0.0, 0.4): {"r": 0.70, "closure": 0.95},  # closures at the cost of r
    }
    assert choose_gate(results) == (0.0, 0.8)


def test_a_wide_window_model_for_files_streams_like_the_live_one(tmp_path: Path) -> None:
    from headcast.models.motion import MotionFrames, MotionStreamer

    torch.manual_seed(1)
    net = MotionNet(NetConfig(channels=16, lookahead_frames=20)).eval()
    model = load_motion_model(export_onnx(net, tmp_path / "wide.onnx"), provider="cpu")
    assert model.metadata["causal"] == "false" and model.lookahead_frames == 20
    assert model.lookahead_s == pytest.approx(0.2125)  # 200 ms plus half a window
    rng = np.random.default_rng(0)
    pcm = (0.1 * rng.standard_normal(40_000)).astype(np.float32)
    offline = infer(model, pcm)
    s = MotionStreamer(model)
    parts = [s.push(pcm[i : i + 333]) for i in range(0, len(pcm), 333)] + [s.flush()]
    streamed = MotionFrames.concat(parts, len(model.names))
    assert len(offline) == len(streamed) == 63  # ceil(2.5 s * 25 fps)
    np.testing.assert_allclose(streamed.coeffs, offline.coeffs, atol=1e-5, rtol=0)


def test_fine_tuning_starts_from_an_exported_models_weights(tmp_path: Path) -> None:
    from headcast.models.training.train import TrainingDataError, load_onnx_weights

    torch.manual_seed(2)
    source = MotionNet(NetConfig(channels=16))
    with torch.no_grad():  # trained weights differ (the export merges identical tensors)
        for p in source.parameters():
            p.normal_(0.0, 0.1)
    path = export_onnx(source, tmp_path / "m.onnx")
    target = MotionNet(NetConfig(channels=16))
    assert not torch.equal(target.state_dict()["head.weight"], source.state_dict()["head.weight"])
    load_onnx_weights(target, path)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    with pytest.raises(TrainingDataError, match="do not fit"):
        load_onnx_weights(MotionNet(NetConfig(channels=32)), path)


def test_an_exported_model_exports_again_with_its_weights_and_metadata(tmp_path: Path) -> None:
    from headcast.models.training.export import reexport_onnx

    torch.manual_seed(3)
    net = MotionNet(NetConfig(channels=16, dilations=(1, 2, 4))).eval()
    with torch.no_grad():  # trained weights differ (the export merges identical tensors)
        for p in net.parameters():
            p.normal_(0.0, 0.1)
    first = export_onnx(net, tmp_path / "a.onnx", {"train_steps": "7"})
    again = reexport_onnx(first, tmp_path / "b.onnx")
    a, b = (load_motion_model(p, provider="cpu", speech_gate=False) for p in (first, again))
    assert b.metadata == a.metadata and b.metadata["train_steps"] == "7"
    pcm = (0.1 * np.random.default_rng(0).standard_normal(20_000)).astype(np.float32)
    np.testing.assert_array_equal(infer(a, pcm).coeffs, infer(b, pcm).coeffs)
    with pytest.raises(ValueError, match="not a headcast motion model"):
        reexport_onnx(write_foreign_onnx(tmp_path / "x.onnx"), tmp_path / "c.onnx")
