"""Build the built-in default avatar from ``skimage.data.astronaut()`` (NASA, public domain).

Usage: python scripts/make_default_avatar.py  (needs the enroll extra: mediapipe)
"""

from __future__ import annotations

import io
import sys

from PIL import Image
from skimage import data

from headcast.models.avatar.enroll import enroll
from headcast.models.avatar.pack import DEFAULT_AVATAR_DIR


def main() -> int:
    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="PNG")
    out = enroll(buf.getvalue(), DEFAULT_AVATAR_DIR, size=512, force="--force" in sys.argv)
    print(f"default avatar written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
