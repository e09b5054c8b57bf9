#!/usr/bin/env bash
# Photos of faces that other packages ship, for the portrait-set test
# (tests/test_avatar_portraits.py): men, children and dark skin, which the crops in
# tests/fixtures/portraits lack. They are fetched from the packages, not copied into
# this repository (see tests/fixtures/portraits/README.md for sources and licenses).
# Usage: scripts/fetch_portraits.sh [DIR]   (default .cache/portraits; PY= the Python
# whose pip downloads, default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.cache/portraits}
py=${PY:-.venv/bin/python}
[[ -x $py ]] || py=python3
if [[ -f $dir/.ok ]]; then exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$dir"

# KPhotoAlbum's demo album (Debian kphotoalbum; photos by its author, CC-BY-SA-4.0)
if ! (cd "$work" && apt-get download -q kphotoalbum >/dev/null 2>&1); then
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  (cd "$work" && apt-get download -q kphotoalbum >/dev/null)
fi
dpkg-deb -x "$work"/kphotoalbum_*.deb "$work/kpa"
for f in jesper_2 new_wave_2 qt-logo; do
  cp "$work/kpa/usr/share/kphotoalbum/demo/$f.jpg" "$dir/kphotoalbum_$f.jpg"
done

# facetorch's example inputs (PyPI sdist, Apache-2.0)
"$py" -m pip download -q --no-deps --no-binary :all: facetorch==0.6.2 -d "$work"
tar xzf "$work"/facetorch-0.6.2.tar.gz -C "$work"
for f in test test2; do
  cp "$work/facetorch-0.6.2/data/input/$f.jpg" "$dir/facetorch_$f.jpg"
done

# mahotas's demo photo of its author (PyPI wheel, MIT)
"$py" -m pip download -q --no-deps --only-binary :all: mahotas==1.4.19 -d "$work"
"$py" -m zipfile -e "$work"/mahotas-1.4.19-*.whl "$work/mahotas"
cp "$work/mahotas/mahotas/demos/data/luispedro.jpg" "$dir/mahotas_luispedro.jpg"

(cd "$dir" && sha256sum -c --quiet) <<'EOF'
e7c5112cad4076c0b16f7a822b0bf559859ad84077705442769afb91c81bcb1b  kphotoalbum_jesper_2.jpg
a262d1ec436c0f41495963cbaaf69cb618da0b56a27fa03c0c1e3206e841a261  kphotoalbum_new_wave_2.jpg
12f4d580dff54dab5a4b0c81f4f208cdb1d134782c7b23d2f8c8bab09a80d458  kphotoalbum_qt-logo.jpg
f896ac94fa305fb40f3370ff8c2c44956e9ef9cba118bd524234a15e586b8ab2  facetorch_test.jpg
630d9d286907468e77a88fee1a3ca997a1f6d76046ff0e3ee44e15f8e7d78cb3  facetorch_test2.jpg
27e7af47501a4e9a06e4d8bd8b834bd773fe7b187baef2f47e120c663524bed1  mahotas_luispedro.jpg
EOF
# The portraits: a square of 2.4 face-box sides around each face (less where the photo
# ends); the boxes (x, y, w, h) are where MediaPipe's face mesh finds the faces.
mkdir -p "$dir/crops"
"$py" - "$dir" <<'PYEOF'
import sys
from pathlib import Path

from PIL import Image

CROPS = {
    "kphotoalbum_jesper_2": ("kphotoalbum_jesper_2.jpg", (259, 116, 268, 304)),
    "kphotoalbum_new_wave_2": ("kphotoalbum_new_wave_2.jpg", (287, 174, 229, 268)),
    "kphotoalbum_qt_logo_left": ("kphotoalbum_qt-logo.jpg", (140, 73, 143, 166)),
    "kphotoalbum_qt_logo_middle": ("kphotoalbum_qt-logo.jpg", (347, 94, 138, 149)),
    "kphotoalbum_qt_logo_right": ("kphotoalbum_qt-logo.jpg", (568, 43, 135, 158)),
    "mahotas_luispedro": ("mahotas_luispedro.jpg", None),
    "facetorch_test_man": ("facetorch_test.jpg", (962, 303, 147, 165)),
    "facetorch_test_boy": ("facetorch_test.jpg", (722, 481, 122, 142)),
    "facetorch_test_girl": ("facetorch_test.jpg", (1271, 393, 145, 152)),
    "facetorch_test2": ("facetorch_test2.jpg", (422, 538, 360, 370)),
}
root = Path(sys.argv[1])
for name, (src, box) in CROPS.items():
    im = Image.open(root / src).convert("RGB")
    if box is not None:
        x, y, w, h = box
        side = min(int(2.4 * max(w, h)), im.width, im.height)
        x0 = int(min(max(x + w / 2 - side / 2, 0), im.width - side))
        y0 = int(min(max(y + h / 2 - side / 2, 0), im.height - side))
        im = im.crop((x0, y0, x0 + side, y0 + side))
    im.save(root / "crops" / f"{name}.png")
PYEOF
touch "$dir/.ok"
echo "portraits fetched into $dir"
