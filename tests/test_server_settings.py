"""server/settings.py: settings reject unknown keys and read the environment."""

from __future__ import annotations

from typing import Any

import pytest

from headcast.models.config import ConfigError
from headcast.server.settings import ServerSettings, load_settings


def test_settings_reject_unknown_keys_and_read_env(tmp_path: Any, monkeypatch: Any) -> None:
    cfg = tmp_path / "server.yaml"
    cfg.write_text("port: 9000\nice_host_addresses: [10.0.0.5]\n")
    monkeypatch.setenv("HEADCAST_SERVE__MAX_SESSIONS", "3")
    s = load_settings(cfg, host="0.0.0.0")
    assert (s.port, s.host, s.max_sessions) == (9000, "0.0.0.0", 3)
    assert s.ice_host_addresses == ("10.0.0.5",)
    assert "*" not in ServerSettings().cors_origins
    cfg.write_text("prot: 9000\n")
    with pytest.raises(ConfigError, match="prot"):
        load_settings(cfg)
    cfg.write_text("allowed_sizes: [250]\n")
    with pytest.raises(ConfigError, match="multiples of 16"):
        load_settings(cfg)


def test_a_config_file_overlays_the_default_one(tmp_path: Any, monkeypatch: Any) -> None:
    """`--config FILE` changes the keys it lists and keeps the others of configs/server.yaml."""
    import headcast.server.settings as settings_module

    base = tmp_path / "server.yaml"
    base.write_text("max_sessions: 7\nport: 8081\n")
    monkeypatch.setattr(settings_module, "SERVER_CONFIG", base)
    mine = tmp_path / "mine.yaml"
    mine.write_text("port: 9100\n")
    s = load_settings(mine)
    assert (s.port, s.max_sessions) == (9100, 7)
    assert load_settings().port == 8081
    with pytest.raises(ConfigError):
        load_settings(tmp_path / "missing.yaml")


def test_a_bad_value_names_where_it_was_set_and_a_default_size_must_be_allowed(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """`serve --port 99999` blames the command line, not the config file it did not come
    from; a default size no session may use is refused at start, not at every session."""
    cfg = tmp_path / "server.yaml"
    cfg.write_text("max_sessions: 0\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, port=99_999)
    text = str(err.value)
    assert "port (command line)" in text and f"max_sessions ({cfg})" in text
    monkeypatch.setenv("HEADCAST_SERVE__PORT", "70000")
    with pytest.raises(ConfigError, match=r"port \(environment HEADCAST_SERVE__\*\)"):
        load_settings(None)
    monkeypatch.delenv("HEADCAST_SERVE__PORT")
    with pytest.raises(
        ConfigError,
        match=r"default_size 1000 is not one of allowed_sizes \(256, 384, 512\).*serve --size",
    ):
        load_settings(None, default_size=1000)
    assert load_settings(None, default_size=384).default_size == 384
