"""Avatar names -> avatar packs: the built-in one and those enrolled into ``avatars_dir``."""

from __future__ import annotations

import re
from pathlib import Path

DEFAULT_AVATAR = "default"
AVATAR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class UnknownAvatar(LookupError):
    """An avatar name that is neither built in nor enrolled."""


class InvalidAvatarName(UnknownAvatar):
    """A name no avatar can have (a bad request rather than a missing avatar)."""


NAME_RULE = "1-64 letters, digits, _ . - (starting with a letter or digit)"


def shown(name: str, limit: int = 64) -> str:
    """``name`` quoted for a message, cut off past ``limit`` characters (an error must
    not echo a huge request back)."""
    return repr(name) if len(name) <= limit else f"{name[:limit]!r}... ({len(name)} characters)"


def avatar_source(name: str, builtin: str | Path | None, avatars_dir: Path) -> str | Path | None:
    """Avatar name -> what ``create_renderer`` takes; :class:`UnknownAvatar` if none."""
    if name == DEFAULT_AVATAR:
        return builtin
    if not AVATAR_NAME.fullmatch(name):
        raise InvalidAvatarName(f"invalid avatar name {shown(name)}: {NAME_RULE}")
    path = avatars_dir / name
    if not is_pack(path):
        raise UnknownAvatar(f"unknown avatar {shown(name)}; see GET /v1/avatars")
    return path


def avatar_names(avatars_dir: Path) -> list[str]:
    """The built-in avatar and every complete pack in ``avatars_dir``."""
    found = (
        sorted(p.name for p in avatars_dir.iterdir() if is_pack(p)) if avatars_dir.is_dir() else []
    )
    return [DEFAULT_AVATAR, *[n for n in found if AVATAR_NAME.fullmatch(n)]]


def is_pack(path: Path) -> bool:
    """A finished avatar pack: enrollment writes its metadata last, then renames it in."""
    return (path / "avatar.json").is_file()
