"""Where an offline render writes: a hidden ``.part`` file beside the output, renamed
at the end, so a failed or interrupted render never leaves a file under the output name."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import av

from models.offline_options import RenderError
from models.pipeline import Take


def temp_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.{os.getpid()}.part")


def open_output(output: Path) -> tuple[Path, Any]:
    """Create the hidden temporary file for ``output``; RenderError if it cannot be written."""
    if output.is_dir():
        raise RenderError(f"{output}: is a directory; give a file name such as out.mp4")
    if not output.parent.is_dir():
        raise RenderError(f"{output}: the folder {output.parent} does not exist")
    tmp = temp_path(output)
    try:
        container = av.open(str(tmp), "w", format="mp4")
    except (OSError, av.error.FFmpegError) as exc:
        tmp.unlink(missing_ok=True)
        raise RenderError(f"{output}: cannot write here ({exc})") from exc
    return tmp, container


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
