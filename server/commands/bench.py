"""``headcast bench NAME``: benchmarks that print side-by-side ratios.

Each benchmark is a module ``server/bench/<name>.py`` exposing ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``, listed in :data:`BENCHMARKS`.
"""

from __future__ import annotations

import argparse
from types import ModuleType

from headcast.server.bench import edtalk, enroll, live, motion, render, render_file, say, soak
from headcast.server.errors import UserError

BENCHMARKS: tuple[ModuleType, ...] = (edtalk, enroll, live, motion, render, render_file, say, soak)

HELP = "run a benchmark (render, motion, live, render-file, ...)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for module in BENCHMARKS:
        name = module.__name__.rsplit(".", 1)[1].replace("_", "-")
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_bench_run=module.run)


def run(args: argparse.Namespace) -> int:
    from headcast.models.audio import AudioError
    from headcast.models.avatar.errors import AvatarError, EnrollError
    from headcast.models.motion.model import MotionModelError
    from headcast.models.offline import RenderError

    try:
        return int(args._bench_run(args) or 0)
    except (AudioError, AvatarError, EnrollError, MotionModelError, RenderError) as exc:
        raise UserError(str(exc)) from exc
