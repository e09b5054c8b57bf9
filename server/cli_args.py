"""Command-line options shared by several ``headcast`` subcommands.

Not under ``server/commands/``: every module there is a subcommand of its own.
"""

from __future__ import annotations

import argparse
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
