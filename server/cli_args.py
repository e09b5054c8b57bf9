"""Command-line options shared by several ``headcast`` subcommands.

Not under ``server/commands/``: every module there is a subcommand of its own.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

BACKENDS = ["auto", "warp", "warp-onnx", "edtalk"]
PRECISIONS = ["fp32", "fp16"]


def add_renderer_arguments(
    parser: argparse.ArgumentParser,
    *,
    backend_help: str,
    precision_help: str,
    backend_dest: str = "backend",
    backend_default: str | None = None,
    precision_default: str | None = None,
) -> None:
    """``--backend``, ``--edtalk-weights DIR`` and ``--edtalk-precision``.

    A default of None leaves the option None when it is not given (so a config file's
    value can stand).
    """
    parser.add_argument(
        "--backend",
        dest=backend_dest,
        default=backend_default,
        choices=BACKENDS,
        help=backend_help,
    )
    parser.add_argument(
        "--edtalk-weights",
        type=Path,
        metavar="DIR",
        help="folder with the EDTalk checkpoints and their ONNX export (docs/edtalk.md)",
    )
    parser.add_argument(
        "--edtalk-precision",
        default=precision_default,
        choices=PRECISIONS,
        help=precision_help,
    )


def bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    """argparse type: a whole number from ``low`` to ``high`` (no upper bound if None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low or (high is not None and value > high):
            allowed = f"between {low} and {high}" if high is not None else f"{low} or more"
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {value}")
        return value

    return parse


positive_int = bounded_int(1)


def positive_seconds(text: str) -> float:
    """argparse type: a finite duration > 0 and at most a day."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < value <= 86_400.0:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 86400, got {text}")
    return value


def writable_file(path: Path, flag: str) -> None:
    """Raise UserError unless ``path`` can be created or replaced as a file (tried with a
    probe file beside it: permission bits alone do not tell, e.g. for root or /proc)."""
    import tempfile

    from headcast.models.paths import folder_problem
    from headcast.server.errors import UserError

    if path.exists() and not path.is_file():
        raise UserError(f"{flag} {path}: is a folder or device; give a file name")
    problem = folder_problem(path)
    if problem is not None:
        raise UserError(f"{flag} {path}: {problem}")
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise UserError(f"{flag} {path}: cannot write there ({exc.strerror})") from exc


def resolve_avatar(avatar: str | None, config: Path | None = None) -> str | None:
    """``--avatar``: a pack folder as given, or a name looked up as the server does (the
    built-in ``default``, or a pack enrolled into its ``avatars_dir``, e.g. through
    ``POST /v1/avatars?name=...``); None for the built-in avatar."""
    from headcast.models.config import ConfigError
    from headcast.server.errors import UserError
    from headcast.server.settings import load_settings

    def avatars_dir() -> Path:
        try:
            return load_settings(config).avatars_dir
        except ConfigError as exc:
            raise UserError(str(exc)) from exc

    # a --config that is missing or broken is said, whatever --avatar is
    folder = avatars_dir() if config is not None else None
    if avatar is None or Path(avatar).is_dir():
        return avatar
    if Path(avatar).is_file():
        raise UserError(
            f"{avatar}: a file, not an avatar pack; make one from a portrait with "
            f"`headcast enroll {avatar} -o DIR`, then --avatar DIR"
        )
    from headcast.server.live.avatar_dir import (
        AVATAR_NAME,
        DEFAULT_AVATAR,
        avatar_names,
        avatar_source,
    )

    if avatar == DEFAULT_AVATAR:
        return None
    folder = folder or avatars_dir()
    if AVATAR_NAME.fullmatch(avatar) and (folder / avatar / "avatar.json").is_file():
        return str(avatar_source(avatar, None, folder))
    known = ", ".join(avatar_names(folder))
    raise UserError(
        f"{avatar}: no such avatar pack folder, nor an avatar of that name in "
        f"{folder.absolute()} (the server's avatars_dir; known: {known}); create one "
        "with `headcast enroll`"
    )
