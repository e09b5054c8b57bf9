"""Foundation: typed configs reject unknown keys, env overrides, presets, no torch at serve time."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from headcast.models.channels import ALL_CHANNELS, EXPRESSION_SLICE, from_mapping
from headcast.models.config import ConfigError, StrictModel, env_overrides, load_config
from headcast.models.emotions import load_presets, preset


class Demo(StrictModel):
    port: int = 8080
    name: str = "x"


def test_config_layers_and_rejects_unknown_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("port: 9000\n")
    assert load_config(Demo, path).port == 9000
    env = {"HEADCAST_DEMO__PORT": "9100"}
    assert load_config(Demo, path, "HEADCAST_DEMO", environ=env).port == 9100
    assert load_config(Demo, path, "HEADCAST_DEMO", {"port": 1}, environ=env).port == 1
    path.write_text("port: 9000\nprot: 1\n")
    with pytest.raises(ConfigError, match="prot"):
        load_config(Demo, path)
    assert env_overrides("HEADCAST_DEMO", {"HEADCAST_DEMO__A__B": "true"}) == {"a": {"b": True}}


def test_emotion_presets_are_expression_only():
    presets = load_presets()
    assert {"neutral", "happy", "sad", "angry", "surprised"} <= set(presets)
    for vec in presets.values():
        outside = np.delete(vec, np.arange(EXPRESSION_SLICE.start, EXPRESSION_SLICE.stop))
        assert not outside.any()
    assert preset("happy")[ALL_CHANNELS.index("mouthSmileLeft")] > 0.5
    with pytest.raises(KeyError, match="known"):
        preset("ecstatic")


def test_unknown_channel_names_are_errors():
    with pytest.raises(KeyError):
        from_mapping({"jawOpenn": 1.0})


def test_serving_path_imports_no_torch():
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from headcast.models.render import create_renderer\n"
        "from headcast.models.channels import zeros\n"
        "r = create_renderer(size=256)\n"
        "r.render(zeros())\n"
        "import headcast.server.cli, headcast.server.commands.serve\n"
        "headcast.server.cli.build_parser()  # imports every command and benchmark module\n"
        "import headcast.models.motion.stream, headcast.models.audio.features\n"
        "bad = [m for m in ('torch', 'mediapipe', 'onnxscript') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "headcast.server.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_lists_subcommands():
    out = _cli("--help")
    assert out.returncode == 0
    for cmd in ("enroll", "preview", "bench"):
        assert cmd in out.stdout


def test_cli_says_its_version():
    out = _cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("headcast 0."), out
