"""Where an output can go: the one-line reason a path's folder cannot hold it."""

from __future__ import annotations

from pathlib import Path


def file_in_the_way(folder: Path) -> Path | None:
    """The nearest existing ancestor of ``folder`` (or ``folder`` itself) when it is not a
    folder (a file where a folder is needed), else None."""
    for p in (folder, *folder.parents):
        if p.exists():
            return None if p.is_dir() else p
    return None


def folder_problem(path: Path) -> str | None:
    """Why ``path``'s folder cannot hold it ("the folder ... does not exist", "... is a
    file, not a folder"), or None when the folder exists."""
    if path.parent.is_dir():
        return None
    blocker = file_in_the_way(path.parent)
    if blocker is not None:
        return f"{blocker} is a file, not a folder"
    return f"the folder {path.parent} does not exist"
