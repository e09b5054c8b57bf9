"""Contact sheet and bank-sweep video of an avatar, for checking a pack by eye."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from headcast.models.avatar import landmarks as L
from headcast.models.channels import (
    ALL_CHANNELS,
    CHANNEL_INDEX,
    EXPRESSION_CHANNELS,
    MOUTH_CHANNELS,
    NUM_CHANNELS,
    POSE_CHANNELS,
    SIGNED_CHANNELS,
    pose_limit,
)
from headcast.models.render.base import Renderer

THUMB = 160  # px per thumbnail
LABEL_W = 190
LEVELS = (0.0, 0.5, 1.0)
SWEEP_FPS = 25
SWEEP_FRAMES = 16  # per channel: up and back down


def full_scale(name: str) -> float:
    """The value that counts as 'full activation' for a channel (pose: 15 degrees / max shift)."""
    if name not in POSE_CHANNELS:
        return 1.0
    return min(15.0, pose_limit(name))


def _fitting(text: str, scale: float) -> float:
    """The font scale, at most ``scale``, at which ``text`` fits the label column
    (mouthLowerDownRight was cut off)."""
    width = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]
    return min(scale, scale * (LABEL_W - 12) / max(width, 1))


def _coeffs(name: str, level: float) -> np.ndarray:
    c = np.zeros(NUM_CHANNELS, np.float32)
    c[CHANNEL_INDEX[name]] = level * full_scale(name)
    if name == "mouthClose":
        c[CHANNEL_INDEX["jawOpen"]] = level  # only meaningful with the jaw open
    return c


def _zoom(frame: np.ndarray, center: np.ndarray, half: float) -> np.ndarray:
    s = frame.shape[0]
    x0 = int(np.clip(center[0] - half, 0, s - 2 * half))
    y0 = int(np.clip(center[1] - half, 0, s - 2 * half))
    crop = frame[y0 : y0 + int(2 * half), x0 : x0 + int(2 * half)]
    return cv2.resize(crop, (THUMB, THUMB), interpolation=cv2.INTER_CUBIC)


def channel_label(name: str, scales: dict[str, float] | None) -> tuple[str, str]:
    """(name, note) for a sheet row: the note says when enrollment weakened or switched
    off the channel on this face ("off", "x0.64"), empty otherwise."""
    scale = (scales or {}).get(name)
    if scale is None or scale >= 1.0:
        return name, ""
    return name, "off: would fold" if scale == 0.0 else f"x{scale:g} (fold limit)"


def contact_sheet(
    renderer: Renderer, landmarks: np.ndarray, scales: dict[str, float] | None = None
) -> np.ndarray:
    """uint8 RGB sheet: one row per channel at 0, 0.5, 1, plus mouth and eye close-ups at 1.

    ``scales``: the pack's ``channel_scales``; weakened and switched-off channels say so.
    """
    size = renderer.size
    mouth_c = landmarks[[L.UPPER_INNER_MID, L.LOWER_INNER_MID], :2].mean(0)
    eyes_c = landmarks[[L.EYE_R_CORNERS[0], L.EYE_L_CORNERS[0]], :2].mean(0)
    half = 0.16 * size
    rows = []
    for name in ALL_CHANNELS:
        frames = [renderer.render(_coeffs(name, lv)) for lv in LEVELS]
        tiles = [cv2.resize(f, (THUMB, THUMB), interpolation=cv2.INTER_AREA) for f in frames]
        tiles += [_zoom(frames[-1], mouth_c, half), _zoom(frames[-1], eyes_c, half * 1.3)]
        label = np.full((THUMB, LABEL_W, 3), 255, np.uint8)
        text, note = channel_label(name, scales)
        cv2.putText(
            label, text, (6, THUMB // 2), cv2.FONT_HERSHEY_SIMPLEX, _fitting(text, 0.55),
            (0, 0, 0), 1, cv2.LINE_AA,
        )  # fmt: skip
        if note:
            cv2.putText(
                label,
                note,
                (6, THUMB // 2 + 24),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.5,
                (200, 0, 0),
                1,
                cv2.LINE_AA,
            )
        rows.append(np.concatenate([label, *tiles], axis=1))
    header = np.full((30, rows[0].shape[1], 3), 255, np.uint8)
    for i, text in enumerate(("0", "0.5", "1", "mouth @1", "eyes @1")):
        cv2.putText(
            header,
            text,
            (LABEL_W + i * THUMB + 8, 21),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.55,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return np.concatenate([header, *rows], axis=0)


def sweep_coefficients() -> list[np.ndarray]:
    """Frames of coefficients sweeping each channel of each bank up and down in turn;
    pose and smile channels also sweep their negative side (a negative smile relaxes
    the portrait's own)."""
    ramp = np.sin(np.linspace(0, np.pi, SWEEP_FRAMES))
    frames = []
    for bank in (MOUTH_CHANNELS, EXPRESSION_CHANNELS, POSE_CHANNELS):
        for name in bank:
            signed = name in POSE_CHANNELS or name in SIGNED_CHANNELS
            frames += [_coeffs(name, float(v)) for v in ramp]
            if signed:
                frames += [-_coeffs(name, float(v)) for v in ramp]
    return frames


def write_sweep(
    renderer: Renderer, path: Path, progress: Callable[[int, int], None] | None = None
) -> int:
    """Write an H.264 MP4 of :func:`sweep_coefficients`; returns the number of frames."""
    import av

    coeffs = sweep_coefficients()
    tmp = path.with_name(path.name + ".part.mp4")
    with av.open(str(tmp), mode="w") as out:
        stream = out.add_stream("libx264", rate=SWEEP_FPS)
        stream.width = stream.height = renderer.size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        for i, c in enumerate(coeffs):
            frame = av.VideoFrame.from_ndarray(renderer.render(c), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
            if progress:
                progress(i + 1, len(coeffs))
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(path)
    return len(coeffs)


# The comparison sheet: one row per portrait, one column per state.
COMPARE_STATES: tuple[tuple[str, dict[str, float]], ...] = (
    ("rest", {}),
    ("neutral", {"mouthSmileLeft": -1.0, "mouthSmileRight": -1.0}),  # its own smile relaxed
    ("jaw 0.5", {"jawOpen": 0.5}),
    ("jaw 1", {"jawOpen": 1.0}),
    ("closed", {"jawOpen": 0.5, "mouthClose": 0.5}),
    ("funnel", {"mouthFunnel": 1.0}),
    ("blink", {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}),
    ("yaw +15", {"headYaw": 15.0}),
    ("yaw -15", {"headYaw": -15.0}),
)
COMPARE_CROP = 0.62  # share of the head frame shown per tile (the face is 42 % of it)
NOTE_W = 260


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.5) -> None:
    color = (0, 0, 0) if img.ndim == 3 else 0
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def _wrap(text: str, width_px: int, scale: float) -> list[str]:
    """Words of ``text`` in lines no wider than ``width_px`` as :func:`_text` draws them."""

    def fits(line: str) -> bool:
        (w, _), _ = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        return w <= width_px

    lines, line = [], ""
    for word in text.split():
        if line and not fits(f"{line} {word}"):
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


NOTE_SCALE = 0.4
NOTE_LINES = 7


def comparison_row(name: str, renderer: Renderer | None, note: str) -> np.ndarray:
    """uint8 (THUMB, NOTE_W + len(COMPARE_STATES) * THUMB, 3) RGB: one portrait's row.

    ``renderer`` None (the portrait was refused) leaves the tiles blank; ``note`` says
    why, or which channels enrollment weakened or switched off.
    """
    from headcast.models.channels import from_mapping

    label = np.full((THUMB, NOTE_W, 3), 255, np.uint8)
    _text(label, name[:32], (6, 20), 0.5)
    lines = _wrap(note, NOTE_W - 12, NOTE_SCALE)
    if len(lines) > NOTE_LINES:
        lines = [*lines[: NOTE_LINES - 1], lines[NOTE_LINES - 1] + " ..."]
    for i, line in enumerate(lines):
        _text(label, line, (6, 42 + 17 * i), NOTE_SCALE)
    tiles = []
    for _, coeffs in COMPARE_STATES:
        if renderer is None:
            tiles.append(np.full((THUMB, THUMB, 3), 235, np.uint8))
            continue
        frame = renderer.render(from_mapping(coeffs))
        s = frame.shape[0]
        half = int(COMPARE_CROP * s / 2)
        crop = frame[s // 2 - half : s // 2 + half, s // 2 - half : s // 2 + half]
        tiles.append(cv2.resize(crop, (THUMB, THUMB), interpolation=cv2.INTER_AREA))
    return np.concatenate([label, *tiles], axis=1)


def comparison_sheet(rows: list[np.ndarray]) -> np.ndarray:
    """Stack :func:`comparison_row` rows under a header naming the states."""
    width = NOTE_W + len(COMPARE_STATES) * THUMB
    header = np.full((30, width, 3), 255, np.uint8)
    for i, (title, _) in enumerate(COMPARE_STATES):
        _text(header, title, (NOTE_W + i * THUMB + 8, 21), 0.55)
    return np.concatenate([header, *rows], axis=0)
