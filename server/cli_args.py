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
