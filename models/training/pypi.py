"""Source distributions from PyPI's simple index, for data that ships inside them.

``pip download`` would also prepare an sdist's metadata, which can need its build
dependencies (Cython, compilers, ...); the files themselves need none, so they are taken
straight from the index, whose links carry each file's sha256 (checked).
"""

from __future__ import annotations

import hashlib
import re
import urllib.request
from pathlib import Path

INDEX = "https://pypi.org/simple"


def download_sdist(name: str, version: str, dest: Path, timeout: float = 120.0) -> Path:
    """``{dest}/{name}-{version}.tar.gz`` (the index's own file name, ``-`` as ``_``
    where the index spells it so), downloaded when absent -> its path.

    Raises OSError when the index cannot be reached and ValueError when the file is not
    listed or its checksum does not match.
    """
    dest.mkdir(parents=True, exist_ok=True)
    names = {f"{n}-{version}.tar.gz" for n in (name, name.replace("-", "_"))}
    for file_name in sorted(names):
        if (dest / file_name).is_file():
            return dest / file_name
    with urllib.request.urlopen(f"{INDEX}/{name}/", timeout=timeout) as reply:
        page = reply.read().decode()
    for file_name in sorted(names):
        found = re.search(rf'href="([^"#]*/{re.escape(file_name)})#sha256=([0-9a-f]+)"', page)
        if found is not None:
            break
    else:
        raise ValueError(f"{name} {version}: no source distribution on PyPI")
    with urllib.request.urlopen(found.group(1), timeout=timeout) as reply:
        data = reply.read()
    if hashlib.sha256(data).hexdigest() != found.group(2):
        raise ValueError(f"{file_name}: checksum mismatch")
    part = dest / f"{file_name}.part"
    part.write_bytes(data)
    part.replace(dest / file_name)
    return dest / file_name
