"""server/live/avatar_dir.py: which avatar packs are listed and served."""

from __future__ import annotations

from pathlib import Path

import pytest

from headcast.server.settings import ServerSettings


def test_only_finished_avatar_packs_are_listed_or_served(tmp_path: Path) -> None:
    """A folder without its metadata (an enrollment still writing, or debris) is neither
    listed nor accepted as an avatar."""
    from headcast.server.live.avatar_dir import UnknownAvatar
    from headcast.server.state import AppState

    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "avatar.json").write_text("{}")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "arrays.npz").write_bytes(b"")
    (tmp_path / ".done.x.part").mkdir()
    state = AppState(ServerSettings(avatars_dir=tmp_path))
    assert state.avatar_names() == ["default", "done"]
    assert state.avatar_source("done") == tmp_path / "done"
    with pytest.raises(UnknownAvatar):
        state.avatar_source("half")
