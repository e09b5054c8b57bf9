"""Where an offline render writes: a hidden ``.part`` file beside the output, renamed
at the end, so a failed or interrupted render never leaves a file under the output name."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import av

from headcast.models.offline.options import RenderError
from headcast.models.paths import folder_problem
from headcast.models.take import Take


def temp_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.{os.getpid()}.part")


#: output file extensions and the container each one gets
OUTPUT_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}


def check_output(output: Path, source: Path | None = None) -> str:
    """The container format for ``output``; RenderError if it is no place for a video.

    Refused: a folder, a device or other non-regular file (the finished render replaces
    the name), the input itself, and names without a video extension.
    """
    if output.is_dir():
        raise RenderError(f"{output}: is a directory; give a file name such as out.mp4")
    if output.exists() and not output.is_file():
        raise RenderError(f"{output}: is not a regular file; give a file name such as out.mp4")
    fmt = OUTPUT_FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise RenderError(
            f"{output}: the output is an MP4 video; name it with one of "
            + ", ".join(OUTPUT_FORMATS)
        )
    if source is not None and output.exists() and output.resolve() == source.resolve():
        raise RenderError(f"{output}: is the input file; give another output name")
    problem = folder_problem(output)
    if problem is not None:
        raise RenderError(f"{output}: {problem}")
    return fmt


def open_output(output: Path, source: Path | None = None) -> tuple[Path, Any]:
    """Create the hidden temporary file for ``output``; RenderError if it cannot be written."""
    fmt = check_output(output, source)
    tmp = temp_path(output)
    try:
        # FFmpeg creates the file only when the first frame is written: find out now
        # that the folder takes no files (read-only, no permission, /proc), not after
        # the whole render
        tmp.open("wb").close()
        container = av.open(str(tmp), "w", format=fmt)
    except (OSError, av.error.FFmpegError) as exc:
        tmp.unlink(missing_ok=True)
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise RenderError(f"{output}: cannot write here ({why})") from exc
    return tmp, container


def check_motion_out(path: Path) -> None:
    """RenderError unless ``path`` can take the motion JSON (a new or regular file)."""
    if path.exists() and not path.is_file():
        raise RenderError(f"{path}: is not a regular file; give a name such as motion.json")
    problem = folder_problem(path)
    if problem is not None:
        raise RenderError(f"{path}: {problem}")


def write_motion_json(take: Take, path: Path) -> None:
    """The take's coefficients as JSON (see :meth:`Take.to_json`), written atomically."""
    tmp = temp_path(path)
    try:
        tmp.write_text(json.dumps(take.to_json()), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise RenderError(f"{path}: cannot write motion ({exc.strerror})") from exc
    finally:
        tmp.unlink(missing_ok=True)
