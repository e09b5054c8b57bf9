"""Lip closures for files from a phone recogniser (models that read ahead only).

A model for files sees the whole utterance, so a second, independent listener can help
where the network hedges: pocketsphinx's English phone recogniser (its acoustic model
and phone language model ship in the PyPI wheel) decodes the audio in blocks of
:data:`BLOCK_S`, and at each recognised /p b m/ of at least :data:`MIN_SPAN_S` the frame
where the network's ``jawOpen`` is lowest inside the phone (or a frame either side) is
closed — opening channels to 0, ``mouthPress`` up to :data:`CLOSURE_PRESS` — but only
where the network already dips there (``jawOpen`` at most :data:`DIP` times the block's
90th-percentile opening, taken as at least :data:`MIN_P90`). The recogniser alone
hallucinates bilabials in vowels; the network alone smears short closures; the pair
closes the ones both hear. Then a dip the network makes on its own between two
openings (``jawOpen`` at a local minimum at most :data:`SHUT_BELOW` times that opening,
rising to at least :data:`RISE` times it within :data:`RISE_S` on both sides) is closed
the same way: the lips meet where the network hesitates between a closure and a narrow
vowel, whichever recogniser is installed. The recogniser hears a block once its frames
have come, and only around the frames that say speech: a pause has no dip to close. The
parameters were chosen on the validation split of the training voices (docs/motion.md).

The live path never runs this: a phone's identity is known only after it ends.
:class:`ClosurePass` streams (files of any length, bounded memory) and
:func:`close_bilabials` runs it over a whole file; both cut the same blocks, so a
streamed file and a whole one give the same frames. Without pocketsphinx installed only
the network's own dips are closed and a warning says so once.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from headcast.models.channels import MOUTH_CHANNELS
from headcast.models.motion.model import MotionModel
from headcast.models.motion.stream import MotionFrames, infer
from headcast.models.render.warp_math import SEAL_PRESS

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
BLOCK_S = 10.0  # recogniser block; a /p b m/ cut by a block edge may be missed
BLOCK = int(BLOCK_S * SAMPLE_RATE)  # samples
MIN_SPAN_S = 0.02
DIP = 0.6
MIN_P90 = 0.05
LANGUAGE_WEIGHT = 2.0  # pocketsphinx -lw for the phone language model
# The search's beams: 1e-20 cost twice the time for the same closures on the
# validation split (docs/motion.md), as did scoring every frame with four Gaussians.
BEAM = 1e-12
PHONE_FRAME_S = 0.01
# The recogniser hears only where the network's frames say speech (speech value above
# HEAR_SPEECH), widened by HEAR_MARGIN_S each side: a closure is only made where the
# network's mouth dips inside speech, so long pauses need not be decoded.
HEAR_SPEECH = 0.05
HEAR_MARGIN_S = 0.3
BILABIALS = frozenset({"P", "B", "M"})

# Channels that open the lips (a closure scales them to 0) and the press channels a
# closure raises; the network's own closure gate uses the same sets.
OPENING_CHANNELS: tuple[str, ...] = (
    "jawOpen",
    "mouthFunnel",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
)
PRESS_CHANNELS: tuple[str, ...] = ("mouthPressLeft", "mouthPressRight")
CLOSURE_PRESS = SEAL_PRESS  # mouthPress of a confident closure: where the renderer seals
SHUT_BELOW = 0.4  # a dip this deep (of the block's opening) between openings is closed
RISE = 0.4  # ... when the mouth opens at least this much (of that opening) ...
RISE_S = 0.2  # ... within this long before and after it

_JAW = MOUTH_CHANNELS.index("jawOpen")
_OPENING = [MOUTH_CHANNELS.index(n) for n in OPENING_CHANNELS]
_PRESS = [MOUTH_CHANNELS.index(n) for n in PRESS_CHANNELS]
_lock = threading.Lock()


class _Recogniser:
    """pocketsphinx in phone-loop mode; one per process, used under a lock."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder, get_model_path

        lm = Path(get_model_path()) / "en-us" / "en-us-phone.lm.bin"
        self.decoder = Decoder(
            samprate=SAMPLE_RATE,
            allphone=str(lm),
            lw=LANGUAGE_WEIGHT,
            beam=BEAM,
            pbeam=BEAM,
            ds=2,  # acoustic scores every other 10 ms frame
            topn=2,  # Gaussians scored per codebook
            bestpath=False,
            loglevel="FATAL",
        )

    def bilabials(self, pcm16k: np.ndarray) -> list[tuple[float, float]]:
        """int16 or float32 (N,) 16 kHz -> [(start s, end s)] of recognised /p b m/."""
        if len(pcm16k) < SAMPLE_RATE // 10:
            return []
        if pcm16k.dtype != np.int16:
            pcm16k = (np.clip(pcm16k, -1.0, 1.0) * 32767).astype(np.int16)
        pcm = pcm16k.tobytes()
        dec = self.decoder
        with _lock:
            dec.start_utt()
            dec.process_raw(pcm, full_utt=True)
            dec.end_utt()
            segs = [(s.word, s.start_frame, s.end_frame) for s in dec.seg()]
        return [
            (a * PHONE_FRAME_S, (b + 1) * PHONE_FRAME_S)
            for w, a, b in segs
            if w in BILABIALS and (b + 1 - a) * PHONE_FRAME_S >= MIN_SPAN_S
        ]


@lru_cache(maxsize=1)
def _recogniser() -> _Recogniser | None:
    try:
        return _Recogniser()
    except ImportError:
        log.warning("no phone recogniser (pocketsphinx): files get the network's closures only")
    except RuntimeError as exc:
        log.warning("phone recogniser unusable (%s): files get the network's closures only", exc)
    return None


def available() -> bool:
    return _recogniser() is not None


def close_spans(
    coeffs: np.ndarray, spans: list[tuple[float, float]], fps: int, first: int = 0
) -> int:
    """Close the lips in ``coeffs`` (float32 (N, 16), frame ``first + i`` at its time) at
    the given /p b m/ spans (seconds from stream start), in place -> closures made."""
    n = len(coeffs)
    if n == 0:
        return 0
    jaw = coeffs[:, _JAW]
    limit = DIP * max(float(np.percentile(jaw, 90)), MIN_P90)
    made = 0
    for start, end in spans:
        a = max(int(np.floor(start * fps)) - first, 0)
        z = min(int(np.ceil(end * fps)) + 1 - first, n)
        if z <= a:
            continue
        k = a + int(np.argmin(jaw[a:z]))
        if jaw[k] > limit:
            continue
        _shut(coeffs, k)
        made += 1
    return made


def close_dips(coeffs: np.ndarray, fps: int) -> int:
    """Close the lips in ``coeffs`` (float32 (N, 16), one block) at the network's own
    deep dips between openings (see the module's docstring), in place -> closures made."""
    jaw = coeffs[:, _JAW].copy()  # decisions on the frames as they came
    n = len(jaw)
    if n < 3:
        return 0
    ref = max(float(np.percentile(jaw, 90)), MIN_P90)
    w = max(1, round(RISE_S * fps))
    inner = jaw[1:-1]
    low = (inner > 1e-4) & (inner <= SHUT_BELOW * ref) & (inner <= jaw[:-2]) & (inner <= jaw[2:])
    made = 0
    for k in np.flatnonzero(low) + 1:
        if min(jaw[max(0, k - w) : k].max(), jaw[k + 1 : k + 1 + w].max()) >= RISE * ref:
            _shut(coeffs, int(k))
            made += 1
    return made


def _shut(coeffs: np.ndarray, k: int) -> None:
    coeffs[k, _OPENING] = 0.0
    coeffs[k, _PRESS] = np.maximum(coeffs[k, _PRESS], CLOSURE_PRESS)


class ClosurePass:
    """Streams frames through the closure pass: push the 16 kHz audio and the frames the
    motion streamer made from it (in step or not); frames come back once their block's
    audio has been heard whole. ``flush`` returns the rest. Holds the audio (as int16)
    of the block being filled and of blocks whose frames have not all come (the motion
    streamer's look-ahead behind the audio: one), and their frames."""

    def __init__(self, fps: int) -> None:
        self.fps = int(fps)
        self.closures = 0
        self._recogniser = _recogniser()
        self._audio: list[np.ndarray] = []  # int16 pieces of the block being heard
        self._audio_n = 0
        self._heard: list[np.ndarray] = []  # int16 audio of whole blocks awaiting frames
        self._applied = 0  # blocks whose frames have been released
        self._frames: list[MotionFrames] = []

    def push(self, pcm16k: np.ndarray, frames: MotionFrames) -> MotionFrames:
        pcm = np.asarray(pcm16k, np.float32).reshape(-1)
        while len(pcm):
            take = min(len(pcm), BLOCK - self._audio_n)
            self._audio.append((np.clip(pcm[:take], -1.0, 1.0) * 32767).astype(np.int16))
            self._audio_n += take
            pcm = pcm[take:]
            if self._audio_n == BLOCK:
                self._hear_block()
        if len(frames):
            self._frames.append(frames)
        out = []
        while self._heard and self._have_frames_until(self._block_end()):
            out.append(self._release(self._block_end()))
        return _concat(out)

    def flush(self, frames: MotionFrames) -> MotionFrames:
        """The end of the stream: ``frames`` are the streamer's last ones."""
        out = [self.push(np.zeros(0, np.float32), frames)]
        if self._audio_n:
            self._hear_block()
        while self._heard and self._frames:
            out.append(self._release(None if len(self._heard) == 1 else self._block_end()))
        out += self._frames  # frames past the audio's last block: nothing was heard there
        self._frames, self._heard = [], []
        return _concat(out)

    def _hear_block(self) -> None:
        self._heard.append(np.concatenate(self._audio))
        self._audio, self._audio_n = [], 0

    def _block_end(self) -> int:
        """First frame after the block whose frames are released next."""
        return int(np.ceil((self._applied + 1) * BLOCK_S * self.fps - 1e-9))

    def _have_frames_until(self, end: int) -> bool:
        return bool(self._frames) and int(self._frames[-1].index[-1]) + 1 >= end

    def _bilabials(self, pcm: np.ndarray, frames: MotionFrames) -> list[tuple[float, float]]:
        """The /p b m/ the recogniser hears in block ``self._applied`` (int16 ``pcm``)
        where ``frames`` (that block's) say speech, in seconds from stream start."""
        if self._recogniser is None:
            return []
        start = self._applied * BLOCK
        out = []
        for a, z in hearing_spans(frames, self.fps, start, len(pcm)):
            out += [
                ((start + a) / SAMPLE_RATE + s, (start + a) / SAMPLE_RATE + e)
                for s, e in self._recogniser.bilabials(pcm[a:z])
            ]
        return out

    def _release(self, end: int | None) -> MotionFrames:
        pcm = self._heard.pop(0)
        frames = _concat(self._frames)
        if end is not None:
            keep = frames.index < end
            rest = MotionFrames(frames.index[~keep], frames.coeffs[~keep], frames.speech[~keep])
            frames = MotionFrames(frames.index[keep], frames.coeffs[keep], frames.speech[keep])
            self._frames = [rest] if len(rest) else []
        else:
            self._frames = []
        spans = self._bilabials(pcm, frames)
        self._applied += 1
        if len(frames):
            coeffs = frames.coeffs.copy()
            self.closures += close_spans(coeffs, spans, self.fps, int(frames.index[0]))
            self.closures += close_dips(coeffs, self.fps)
            frames = MotionFrames(frames.index, coeffs, frames.speech)
        return frames


def hearing_spans(frames: MotionFrames, fps: int, start: int, n: int) -> list[tuple[int, int]]:
    """Sample ranges [a, z) of a block of ``n`` samples starting at sample ``start`` of the
    stream that the recogniser hears: around the frames whose speech value is above
    :data:`HEAR_SPEECH` (within :data:`HEAR_MARGIN_S`), and wherever no frame says."""
    if n == 0:
        return []
    # One slot per frame time in the block; audio no frame covers is heard.
    first = -(-start * fps // SAMPLE_RATE)
    slots = -(-(start + n) * fps // SAMPLE_RATE) - first
    hear = np.ones(slots, bool)
    inside = (frames.index >= first) & (frames.index < first + slots)
    hear[frames.index[inside] - first] = frames.speech[inside] > HEAR_SPEECH
    margin = round(HEAR_MARGIN_S * fps)
    on = np.flatnonzero(hear)
    if len(on) == 0:
        return []
    gaps = np.flatnonzero(np.diff(on) > 2 * margin + 1)
    firsts, lasts = on[np.r_[0, gaps + 1]], on[np.r_[gaps, len(on) - 1]]
    out = []
    for lo, hi in zip(firsts.tolist(), lasts.tolist(), strict=True):
        a = (first + lo - margin) * SAMPLE_RATE // fps - start
        z = -(-(first + hi + 1 + margin) * SAMPLE_RATE // fps) - start
        out.append((max(a, 0), min(z, n)))
    return out


def _concat(parts: list[MotionFrames]) -> MotionFrames:
    return MotionFrames.concat(parts, len(MOUTH_CHANNELS))


def infer_file(
    model: MotionModel, pcm16k: np.ndarray, closures: bool | None = None
) -> MotionFrames:
    """:func:`~models.motion.stream.infer`, then the closure pass when the model reads
    ahead (``closures=None``; True/False force it on or off)."""
    frames = infer(model, pcm16k)
    if closures is None:
        closures = not model.causal
    return close_bilabials(pcm16k, frames, model.fps) if closures else frames


def close_bilabials(pcm16k: np.ndarray, frames: MotionFrames, fps: int) -> MotionFrames:
    """The whole file at once: the same blocks as :class:`ClosurePass`, the same frames."""
    closer = ClosurePass(fps)
    # Block by block with the frames up to its end, so that one block's audio is held;
    # frames past the audio's last block go with the flush.
    blocks = -(-len(pcm16k) // BLOCK)
    of = np.minimum(frames.index * SAMPLE_RATE // (BLOCK * fps), blocks)
    out = [
        closer.push(pcm16k[b * BLOCK : (b + 1) * BLOCK], _pick(frames, of == b))
        for b in range(blocks)
    ]
    out.append(closer.flush(_pick(frames, of == blocks)))
    return _concat(out)


def _pick(frames: MotionFrames, keep: np.ndarray) -> MotionFrames:
    return MotionFrames(frames.index[keep], frames.coeffs[keep], frames.speech[keep])
