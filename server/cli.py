"""The ``headcast`` console entry point.

Each subcommand lives in ``server/commands/<name>.py`` and exposes
``HELP: str``, ``add_arguments(parser)`` and ``run(args) -> int``; :data:`COMMANDS`
lists them (adding one is a module and a line there). User errors raise
:class:`server.errors.UserError` and end as one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from types import ModuleType

from headcast.server.commands import bench, enroll, motion, preview, render, serve, train
from headcast.server.commands import eval as evaluate
from headcast.server.errors import UserError

COMMANDS: tuple[ModuleType, ...] = (
    bench,
    enroll,
    evaluate,
    motion,
    preview,
    render,
    serve,
    train,
)


#: libraries whose INFO lines are for their own debugging (shown with -v)
QUIET_LOGGERS = ("aioice", "aiortc")


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # a line per ICE candidate pair and state says nothing to a user
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.NOTSET if verbose else logging.WARNING)


def command_name(module: ModuleType) -> str:
    """``server.commands.render_file`` -> ``render-file``."""
    return module.__name__.rsplit(".", 1)[1].replace("_", "-")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("headcast")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headcast", description="Real-time talking-head streaming server."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"headcast {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        name = command_name(module)
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    # SIGTERM (`kill`, a container stopping) unwinds like Ctrl-C, so partial outputs are
    # removed and child processes stopped; `serve` installs its own graceful handlers.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        print(f"headcast {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print("terminated" if exc.args == (_TERMINATED,) else "interrupted", file=sys.stderr)
        return 143 if exc.args == (_TERMINATED,) else 130


_TERMINATED = "SIGTERM"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(_TERMINATED)


if __name__ == "__main__":
    raise SystemExit(main())
