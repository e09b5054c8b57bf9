"""``headcast bench NAME``: benchmarks that print side-by-side ratios.

Each benchmark is a module ``server/bench/<name>.py`` exposing ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; they are discovered.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil

from server import bench
from server.errors import UserError

HELP = "run a benchmark (render, motion, live, render-file, ...)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{bench.__name__}.{info.name}")
        cmd = sub.add_parser(info.name.replace("_", "-"), help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_bench_run=module.run)


def run(args: argparse.Namespace) -> int:
    from models.audio import AudioError
    from models.avatar.errors import AvatarError, EnrollError
    from models.motion.model import MotionModelError
    from models.offline_options import RenderError

    try:
        return int(args._bench_run(args) or 0)
    except (AudioError, AvatarError, EnrollError, MotionModelError, RenderError) as exc:
        raise UserError(str(exc)) from exc
