"""Speech synthesis with phone timings: flite, festival and espeak-ng.

* flite: ``-psdur`` prints ``phone:end_time`` for every segment.
* festival: a Scheme batch script synthesises many utterances per process and writes
  ``utt.save.segs`` files (``end_time 100 phone`` lines).
* espeak-ng: libespeak-ng through ctypes with phoneme events; each event carries the
  sample position where a phoneme starts.

Every engine returns :class:`Utterance` (float32 audio at its native rate plus
visemes with times in seconds). Tempo uses the engine's own duration control, pitch is
shifted by playing the waveform at a different rate (which scales time too; the tempo
asked of the engine compensates) so phone times stay exact.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from headcast.models.training.visemes import SILENCE, cmu_visemes, espeak_visemes, viseme_segments

FLITE_VOICES = ("slt", "rms", "awb", "kal16", "kal")
FESTIVAL_VOICES = ("kal_diphone", "cmu_us_slt_arctic_hts")
ESPEAK_DEFAULT_RATE = 175  # words per minute
ESPEAK_VARIANTS = (
    "en-us", "en", "en-us+f2", "en-us+f3", "en-us+f4", "en-us+m3", "en-us+m4", "en+f5",
    "en+m7", "en-us+klatt", "en-us+klatt4", "en+Andy", "en+Annie", "en+Denis", "en+max",
    "en-us+iven3", "en+michel", "en+robosoft", "en-029", "en-gb-x-rp", "en+antonio", "en+linda",
)  # fmt: skip


@dataclass(frozen=True)
class Voice:
    engine: str  # "flite" | "festival" | "espeak"
    name: str

    def __str__(self) -> str:
        return f"{self.engine}:{self.name}"


@dataclass
class Utterance:
    """audio: float32 (N,) at ``rate`` Hz; visemes: [(viseme, start s, end s)]."""

    audio: np.ndarray
    rate: int
    visemes: list[tuple[str, float, float]]
    voice: str
    text: str


def available_engines() -> dict[str, bool]:
    return {
        "flite": shutil.which("flite") is not None,
        "festival": shutil.which("festival") is not None,
        "espeak": _espeak_lib() is not None,
    }


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        rate, n, width = w.getframerate(), w.getnframes(), w.getsampwidth()
        raw = w.readframes(n)
        channels = w.getnchannels()
    if width != 2:
        raise RuntimeError(f"{path}: expected 16-bit PCM")
    x = np.frombuffer(raw, np.int16).astype(np.float32) / 32768.0
    return x.reshape(-1, channels).mean(axis=1), rate


def _ends_to_visemes(
    items: list[tuple[str, float]], mapper: object
) -> list[tuple[str, float, float]]:
    """[(phone, end_time)] -> [(viseme, start, end)] via ``mapper(phone) -> visemes``."""
    segs = []
    start = 0.0
    for phone, end in items:
        if end > start:
            segs.append((mapper(phone), start, end))  # type: ignore[operator]
        start = max(start, end)
    return viseme_segments(segs)


def synth_flite(text: str, voice: str, stretch: float) -> Utterance:
    """One utterance with flite; ``stretch`` > 1 is slower."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "out.wav"
        proc = subprocess.run(
            ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.3f}",
             "-psdur", "-t", text, "-o", str(wav)],
            capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
        audio, rate = _read_wav(wav)
    items = []
    for tok in proc.stdout.split():
        phone, _, end = tok.rpartition(":")
        if phone:
            items.append((phone, float(end)))
    return Utterance(audio, rate, _ends_to_visemes(items, cmu_visemes), f"flite:{voice}", text)


def synth_festival(texts: list[str], voice: str, stretch: float) -> list[Utterance]:
    """Many utterances in one festival process (start-up costs ~0.5 s)."""
    with tempfile.TemporaryDirectory() as tmp:
        lines = [f"(voice_{voice})", f"(Parameter.set 'Duration_Stretch {stretch:.3f})"]
        for i, text in enumerate(texts):
            clean = text.replace("\\", " ").replace('"', " ")
            lines += [
                f'(set! utt (Utterance Text "{clean}"))',
                "(utt.synth utt)",
                f'(utt.save.wave utt "{tmp}/{i}.wav" \'riff)',
                f'(utt.save.segs utt "{tmp}/{i}.segs")',
            ]
        script = Path(tmp) / "run.scm"
        script.write_text("\n".join(lines) + "\n", encoding="utf-8")
        subprocess.run(
            ["festival", "-b", str(script)], capture_output=True, check=True, timeout=900
        )
        out = []
        for i, text in enumerate(texts):
            wav, segs = Path(tmp) / f"{i}.wav", Path(tmp) / f"{i}.segs"
            if not (wav.is_file() and segs.is_file()):
                continue
            audio, rate = _read_wav(wav)
            items = []
            for line in segs.read_text(encoding="latin-1").splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[0] != "#":
                    items.append((parts[2], float(parts[0])))
            visemes = _ends_to_visemes(items, cmu_visemes)
            out.append(Utterance(audio, rate, visemes, f"festival:{voice}", text))
    return out


@dataclass
class _Espeak:
    lib: ctypes.CDLL
    rate: int
    sink: _EspeakSink
    callback: object  # keeps the ctypes callback alive


_ESPEAK: list[_Espeak] = []  # one per process
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_PARAM_RATE, _PARAM_PITCH = 1, 3


class _EspeakEvent(ctypes.Structure):
    # espeak_EVENT from speak_lib.h; the id union is read as its 8-byte string member.
    _fields_ = [  # noqa: RUF012
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent)
)


def _espeak_lib() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libespeak-ng.so.1")
    except OSError:
        return None


class _EspeakSink:
    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.events: list[tuple[int, str]] = []
        self.samples = 0

    def __call__(self, wav: ctypes.Array, n: int, events: ctypes.Array) -> int:
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_PHONEME:
                self.events.append((int(ev.sample), ev.id.decode("latin-1")))
            i += 1
        if n > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, (n,)).astype(np.float32) / 32768.0)
            self.samples += n
        return 0


def espeak_started() -> bool:
    """Whether libespeak-ng has run in this process (its state then carries into every
    process forked from it, see models/training/jobs.py)."""
    return bool(_ESPEAK)


def _espeak() -> _Espeak:
    """libespeak-ng initialised once per process (it keeps global state)."""
    if not _ESPEAK:
        lib = _espeak_lib()
        if lib is None:
            raise RuntimeError("libespeak-ng.so.1 not found (apt-get install libespeak-ng1)")
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_PHONEME_EVENTS)
        sink = _EspeakSink()
        cb = _CALLBACK(sink)
        lib.espeak_SetSynthCallback(cb)
        _ESPEAK.append(_Espeak(lib, int(rate), sink, cb))
    return _ESPEAK[0]


def synth_espeak(text: str, voice: str, stretch: float, pitch: int = 50) -> Utterance:
    """One utterance with libespeak-ng; ``pitch`` is espeak's 0..100 base pitch."""
    engine = _espeak()
    lib, rate, sink = engine.lib, engine.rate, engine.sink
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise RuntimeError(f"espeak-ng has no voice {voice!r}")
    lib.espeak_SetParameter(_PARAM_RATE, int(round(ESPEAK_DEFAULT_RATE / stretch)), 0)
    lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
    sink.chunks, sink.events, sink.samples = [], [], 0
    data = text.encode("utf-8") + b"\0"
    lib.espeak_Synth(data, len(data), 0, 0, 0, 0, None, None)
    lib.espeak_Synchronize()
    audio = np.concatenate(sink.chunks) if sink.chunks else np.zeros(0, np.float32)
    # Phoneme events mark starts; a pause ("_") event or the end closes the last phone.
    starts = sorted(sink.events)
    base = starts[0][0] if starts and starts[0][0] > len(audio) else 0  # counters may not reset
    segs: list[tuple[tuple[str, ...], float, float]] = []
    first = (starts[0][0] - base) / rate if starts else 0.0
    if first > 0:
        segs.append(((SILENCE,), 0.0, first))
    for k, (pos, phone) in enumerate(starts):
        s = (pos - base) / rate
        e = (starts[k + 1][0] - base) / rate if k + 1 < len(starts) else len(audio) / rate
        if e > s:
            segs.append((espeak_visemes(phone), s, e))
    return Utterance(audio, rate, viseme_segments(segs), f"espeak:{voice}", text)
