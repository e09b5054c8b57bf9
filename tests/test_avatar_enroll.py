"""Enrollment: robust on transformed portraits, clean errors on bad input, cached by content."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest

from headcast.models.avatar.enroll import build_pack, enroll
from headcast.models.avatar.errors import EnrollError
from headcast.models.avatar.pack import load_pack
from tests.conftest import png_bytes

pytest.importorskip("mediapipe")


def _rotate(img: np.ndarray, deg: float) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


TRANSFORMS = {
    "mirrored": lambda im: im[:, ::-1].copy(),
    "rotated10": lambda im: _rotate(im, 10),
    "half": lambda im: cv2.resize(im, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
    "double": lambda im: cv2.resize(im, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC),
    "padded": lambda im: cv2.copyMakeBorder(
        im, 200, 60, 300, 100, cv2.BORDER_CONSTANT, value=(40, 90, 160)
    ),
    "dark": lambda im: (im.astype(np.float32) * 0.45).astype(np.uint8),
}


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_enrolls_transformed_portraits(astronaut, name):
    img = TRANSFORMS[name](astronaut)
    pack = build_pack(np.ascontiguousarray(img), size=256)
    lm = pack.arrays["landmarks"]
    # The face lands where the head frame puts it, eyes level, whatever the input did.
    eye_r = lm[[33, 133], :2].mean(0)
    eye_l = lm[[263, 362], :2].mean(0)
    assert abs(np.degrees(np.arctan2(*(eye_l - eye_r)[::-1]))) < 2.0
    face_h = np.linalg.norm(lm[10, :2] - lm[152, :2])
    assert 0.38 * 256 < face_h < 0.46 * 256
    assert not pack.meta["channel_scales"].get("jawOpen")


def test_enroll_writes_a_loadable_pack_and_caches(tmp_path, astronaut):
    data = png_bytes(astronaut)
    stages: list[str] = []
    start = time.perf_counter()
    out = enroll(data, tmp_path / "a", size=256, progress=lambda f, s: stages.append(s))
    first = time.perf_counter() - start
    pack = load_pack(out)
    assert pack.size == 256 and pack.arrays["bases"].shape[1:] == (2, 128, 128)
    assert "done" in stages
    start = time.perf_counter()
    enroll(data, tmp_path / "a", size=256)
    assert time.perf_counter() - start < first / 3  # served from the cache


def test_enrolls_a_megapixel_portrait(astronaut):
    # Its speed is measured by `headcast bench enroll`, not asserted here.
    big = cv2.resize(astronaut, (1000, 1000), interpolation=cv2.INTER_CUBIC)
    pack = build_pack(big, size=512)
    assert pack.size == 512 and pack.meta["enroll_seconds"] > 0


def test_several_faces_take_the_largest(astronaut):
    small = cv2.resize(astronaut, None, fx=0.6, fy=0.6)[::, ::-1]
    canvas = np.full((560, 960, 3), 200, np.uint8)
    canvas[20:532, 0:512] = astronaut
    canvas[100 : 100 + small.shape[0], 540 : 540 + small.shape[1]] = small
    pack = build_pack(canvas, size=256)
    assert pack.meta["faces_found"] == 2
    mat = pack.arrays["portrait_matrix"]
    assert np.hypot(mat[0, 0], mat[1, 0]) < 1.5  # the big face was chosen (smaller scale-up)


def test_several_faces_of_one_size_are_refused_with_what_to_do(astronaut):
    canvas = np.full((560, 1060, 3), 200, np.uint8)
    canvas[20:532, 0:512] = astronaut
    canvas[20:532, 540:1052] = astronaut[:, ::-1]
    with pytest.raises(EnrollError, match=r"2 faces of about the same size.*crop the photo"):
        build_pack(canvas, size=256)


def _turned(points: np.ndarray, yaw: float = 0.0, pitch: float = 0.0) -> np.ndarray:
    from headcast.models.render.warp_math import rotation

    centre = points.mean(axis=0)
    return ((points - centre) @ rotation(yaw, pitch, 0.0).T + centre).astype(np.float32)


def test_head_turned_or_tilted_past_the_renderer_is_refused(astronaut):
    from headcast.models.avatar.detect import check_pose, detect_landmarks, head_angles

    points = detect_landmarks(astronaut).points
    yaw, pitch = head_angles(points)
    assert abs(yaw) < 10 and abs(pitch) < 10  # a frontal portrait measures as one
    check_pose(points)
    check_pose(_turned(points, yaw=30))  # within what the renderer holds
    for turn, why in (({"yaw": 60}, r"turned (59|60|61) degrees"), ({"yaw": -60}, "turned")):
        with pytest.raises(EnrollError, match=why + r".*face looks towards the camera"):
            check_pose(_turned(points, **turn))
    with pytest.raises(EnrollError, match=r"tilted \d+ degrees (up|down).*towards the camera"):
        check_pose(_turned(points, pitch=55))


def test_a_channel_that_folds_at_any_strength_is_switched_off_not_refused(
    monkeypatch, tmp_path, astronaut, capsys
):
    """A displacement that mirrors the face (x12) folds at every strength tried: the face still
    enrolls, with that channel off (strength 0) in the pack, the CLI and the preview."""
    import headcast.models.avatar.enroll as E
    from headcast.server.cli import main

    authored = E.landmark_displacements
    k = E.CHANNEL_INDEX["browInnerUp"]

    def mirrored(points: np.ndarray) -> np.ndarray:
        disp = authored(points)
        x = points[:, 0]
        disp[k, :, 0] = -12.0 * (x - x.mean())
        disp[k, :, 1] = 0.0
        return disp

    monkeypatch.setattr(E, "landmark_displacements", mirrored)
    portrait = tmp_path / "face.png"
    portrait.write_bytes(png_bytes(astronaut))
    assert main(["enroll", str(portrait), "-o", str(tmp_path / "a"), "--size", "256"]) == 0
    assert "switched off (would fold this face): browInnerUp" in capsys.readouterr().out
    pack = load_pack(tmp_path / "a")
    assert pack.meta["channel_scales"]["browInnerUp"] == 0.0
    assert pack.meta["channels_off"] == ["browInnerUp"]
    assert not pack.arrays["bases"][k].any() and not pack.arrays["lip_bases"][k].any()
    assert pack.meta["channel_scales"].get("jawOpen", 1.0) == 1.0  # the others are untouched
    assert main(["preview", "--avatar", str(tmp_path / "a"), "-o", str(tmp_path / "p")]) == 0
    assert "browInnerUp" in capsys.readouterr().out


def test_closed_lips_are_not_counted_as_folds():
    """Triangles between the inner lips of a closed mouth are under a pixel high: any motion
    flips them, so the fold test leaves them out; a real fold of a proper triangle counts."""
    from headcast.models.avatar.bases import degenerate_triangles, folded_triangles

    xy = np.array([[0.0, 0.0], [20.0, 0.0], [10.0, 0.4], [10.0, 12.0]])
    tris = np.array([[0, 1, 2], [0, 3, 1]])
    assert degenerate_triangles(xy, tris).tolist() == [True, False]
    lip_drop = np.zeros_like(xy)
    lip_drop[2, 1] = -3.0  # the lower lip's middle moves past the upper one's
    assert folded_triangles(xy, lip_drop, tris) == 0
    fold = np.zeros_like(xy)
    fold[3, 1] = -20.0  # the chin point crosses the lip line
    assert folded_triangles(xy, fold, tris) == 1


@pytest.mark.parametrize(
    "payload,needle",
    [
        (b"", "empty"),
        (b"this is not an image at all", "not a readable image"),
        (png_bytes(np.zeros((40, 40, 3), np.uint8)), "too small"),
        (png_bytes(np.full((400, 400, 3), 128, np.uint8)), "no face"),
    ],
)
def test_bad_inputs_fail_cleanly(tmp_path, payload, needle):
    with pytest.raises(EnrollError, match=needle):
        enroll(payload, tmp_path / "x", size=256)
    assert not (tmp_path / "x" / "avatar.json").exists()


def test_truncated_file_fails_cleanly(tmp_path, astronaut):
    data = png_bytes(astronaut)
    with pytest.raises(EnrollError, match="not a readable image"):
        enroll(data[: len(data) // 2], tmp_path / "t", size=256)


def test_tiny_face_names_the_minimum(astronaut):
    tiny = cv2.resize(astronaut, None, fx=0.3, fy=0.3, interpolation=cv2.INTER_AREA)
    canvas = np.full((700, 700, 3), 230, np.uint8)
    canvas[300 : 300 + tiny.shape[0], 300 : 300 + tiny.shape[1]] = tiny
    with pytest.raises(EnrollError, match=r"too small|no face"):
        build_pack(canvas, size=256)


def test_small_face_is_refused_with_the_minimum_and_what_to_do(monkeypatch, astronaut):
    import headcast.models.avatar.detect as D

    monkeypatch.setattr(D, "MIN_FACE_HEIGHT", 400)  # the astronaut's face is ~210 px
    with pytest.raises(
        EnrollError, match=r"too small: \d+ px.*minimum is 400 px; use a photo in which the face"
    ) as refused:
        build_pack(astronaut, size=256)
    assert "crop closer" not in str(refused.value)  # cropping does not enlarge the face


def test_rgba_and_grayscale_inputs(tmp_path, astronaut):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    for i, img in enumerate((rgba, gray)):
        out = enroll(png_bytes(img), tmp_path / f"p{i}", size=256)
        assert load_pack(out).image.shape == (256, 256, 3)


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    from headcast.server.cli import main

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 nope")
    assert main(["enroll", str(bad), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def _png_with_size(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` (the pixels are never read)."""
    import struct
    import zlib

    data = bytearray(png_bytes(np.zeros((8, 8, 3), np.uint8)))
    ihdr = 8  # after the signature: length (4), b"IHDR" (4), data (13), crc (4)
    body = bytearray(data[ihdr + 8 : ihdr + 8 + 13])
    body[0:8] = struct.pack(">II", width, height)
    data[ihdr + 8 : ihdr + 8 + 13] = body
    data[ihdr + 21 : ihdr + 25] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(body)))
    return bytes(data)


def test_extreme_size_is_refused_before_decoding(tmp_path):
    with pytest.raises(EnrollError, match="too large"):
        enroll(_png_with_size(60_000, 40_000), tmp_path / "huge", size=256)


def test_exif_orientation_and_16_bit_grayscale(tmp_path, astronaut):
    """A phone photo stored sideways with an EXIF orientation tag, and a 16-bit grayscale
    PNG, enroll as the upright face they show."""
    import io

    from PIL import Image

    from headcast.models.avatar.image_io import load_portrait

    upright = load_portrait(png_bytes(astronaut))
    for tag, stored in ((3, Image.Transpose.ROTATE_180), (6, Image.Transpose.ROTATE_90)):
        exif = Image.Exif()
        exif[0x0112] = tag  # Orientation: rotate by 180, or 90 clockwise, to display
        buf = io.BytesIO()
        Image.fromarray(astronaut).transpose(stored).save(buf, "JPEG", quality=95, exif=exif)
        shown = load_portrait(buf.getvalue())
        assert shown.shape == upright.shape
        assert np.abs(shown.astype(np.float32) - upright).mean() < 6.0, tag
    enroll(buf.getvalue(), tmp_path / "exif", size=256)  # the face is found upright

    gray16 = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    buf = io.BytesIO()
    Image.fromarray(gray16).save(buf, "PNG")
    assert Image.open(io.BytesIO(buf.getvalue())).mode.startswith("I")
    got = load_portrait(buf.getvalue())
    assert np.abs(got[..., 0].astype(np.int16) - gray16 // 257).max() <= 1  # not clipped white
    enroll(buf.getvalue(), tmp_path / "gray16", size=256)


def test_output_that_cannot_be_a_pack_folder_is_a_clear_error(tmp_path, astronaut, capsys):
    from headcast.server.cli import main

    portrait = tmp_path / "face.png"
    portrait.write_bytes(png_bytes(astronaut))
    blocker = tmp_path / "taken"
    blocker.write_text("x")
    for out, why in (
        (blocker, "not a folder"),
        (blocker / "pack", f"{blocker} is a file, not a folder"),
        (blocker / "deeper" / "pack", f"{blocker} is a file, not a folder"),
    ):
        assert main(["enroll", str(portrait), "-o", str(out), "--size", "256"]) == 2
        err = capsys.readouterr().err
        assert why in err and "Traceback" not in err
    assert blocker.read_text() == "x"


def test_pack_appears_whole_and_replaces_only_a_pack(tmp_path, astronaut):
    """The pack is written beside its folder and renamed in; re-enrolling replaces a
    pack; a folder holding other files is left alone with a clear error."""
    out = enroll(png_bytes(astronaut), tmp_path / "a", size=256)
    assert (out / "avatar.json").is_file()
    first = (out / "avatar.json").read_text()
    enroll(png_bytes(astronaut[:, ::-1].copy()), out, size=256, force=True)
    assert (out / "avatar.json").read_text() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"], "no temporary folders left"
    empty = tmp_path / "volume"  # an existing empty folder (a mounted volume) is used as is
    empty.mkdir()
    assert (enroll(png_bytes(astronaut), empty, size=256) / "avatar.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "volume"]
    busy = tmp_path / "photos"
    busy.mkdir()
    (busy / "holiday.jpg").write_bytes(b"mine")
    with pytest.raises(EnrollError, match="other files"):
        enroll(png_bytes(astronaut), busy, size=256)
    assert [p.name for p in busy.iterdir()] == ["holiday.jpg"]


def test_another_portraits_pack_is_replaced_only_with_force(tmp_path, astronaut):
    """A pack folder made from one photo is not silently overwritten by another: the
    error names the photo it holds; --force replaces it; the same photo is cached."""
    from PIL import Image

    first, second = tmp_path / "astronaut.png", tmp_path / "mirrored.png"
    Image.fromarray(astronaut).save(first)
    Image.fromarray(astronaut[:, ::-1].copy()).save(second)
    out = enroll(first, tmp_path / "pack", size=256)
    before = (out / "avatar.json").read_text()
    with pytest.raises(EnrollError, match="holds the avatar of astronaut.png.*--force"):
        enroll(second, out, size=256)
    assert (out / "avatar.json").read_text() == before
    enroll(second, out, size=256, force=True)
    assert json.loads((out / "avatar.json").read_text())["source_name"] == "mirrored.png"


def test_grid_location_matches_scipy_barycentric_transform():
    """The densifier's own point location gives scipy's triangles and weights."""
    from scipy.spatial import Delaunay

    from headcast.models.avatar.bases import _locate, grid_points

    rng = np.random.default_rng(3)
    nodes = np.concatenate(
        [rng.uniform(20, 236, (300, 2)), [[-1, -1], [256, -1], [-1, 256], [256, 256]]]
    )
    tri = Delaunay(nodes)
    owner, bary = _locate(nodes, tri.simplices, 256, 64)
    gx, gy = grid_points(256, 64)
    query = np.stack([gx.ravel(), gy.ravel()], 1)
    found = tri.find_simplex(query)
    assert (owner >= 0).all() and (found >= 0).all()
    values = rng.normal(size=(len(nodes), 2))
    trans = tri.transform[found]
    ref_b = np.einsum("nij,nj->ni", trans[:, :2], query - trans[:, 2])
    ref_b = np.concatenate([ref_b, 1 - ref_b.sum(1, keepdims=True)], 1)
    ref = np.einsum("nk,nkc->nc", ref_b, values[tri.simplices[found]])
    mine = np.einsum("nk,nkc->nc", bary, values[tri.simplices[owner]])
    np.testing.assert_allclose(mine, ref, atol=1e-9)


def test_cli_enroll_says_only_what_a_user_needs(tmp_path):
    """No MediaPipe/TensorFlow Lite chatter and no progress redraws when stderr is not a
    terminal: the pack's path and the channels' report, nothing else."""
    import subprocess
    import sys

    portrait = tmp_path / "p.png"
    from skimage import data

    portrait.write_bytes(png_bytes(np.asarray(data.astronaut())))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "headcast.server.cli",
            "enroll",
            str(portrait),
            "-o",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    assert "avatar pack:" in done.stdout


def test_a_black_and_white_portrait_gets_a_grey_mouth(astronaut):
    """The synthesised mouth interior (tongue, teeth, cavity) is not pink in a black-and-
    white photo; a colour photo keeps its colours."""
    grey = np.repeat(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    colour = build_pack(astronaut, size=256)
    bw = build_pack(np.ascontiguousarray(grey), size=256)
    for key in ("teeth_upper", "teeth_lower"):
        rgb = bw.arrays[key][..., :3].astype(int)
        assert np.all(rgb.max(axis=-1) == rgb.min(axis=-1)), key
    cavity = bw.arrays["cavity"].reshape(2, 3)
    np.testing.assert_allclose(cavity, np.repeat(cavity[:, :1], 3, axis=1), atol=1e-4)
    tongue = colour.arrays["teeth_lower"][15, 64].astype(int)  # above the lower teeth
    assert tongue[3] > 200 and tongue[0] > tongue[2] + 20  # opaque and pink
