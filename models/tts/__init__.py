"""Text to speech: the built-in engines (flite, espeak-ng) and OpenAI-compatible endpoints.

Everything here returns speech as float32 (N,) samples at 16 kHz, the rate the motion
model and the live sessions use, in pieces: long text is split into sentences and each is
synthesised on its own, so the first one can play while the rest are made.

* :func:`builtin_voices` lists the voices of the engines installed on this machine
  (Debian ``flite`` and ``espeak-ng``; nothing to download, no network).
* :class:`RemoteVoice` speaks through any endpoint that answers OpenAI's
  ``POST /v1/audio/speech`` (``{"model", "input", "voice", "response_format": "pcm"}`` ->
  16-bit mono PCM, streamed), e.g. a self-hosted Kokoro or Piper server.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import wave
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from headcast.models.audio.features import StreamingResampler, to_mono_16k

SYNTH_TIMEOUT_S = 30.0  # one sentence from a built-in engine
MAX_PIECE_CHARS = 240  # sentences longer than this are cut at a comma or space


class TTSError(RuntimeError):
    """The engine or endpoint failed; the message says which and why."""


class UnknownVoice(ValueError):
    """A voice name that is not offered; the message lists the ones that are."""


@dataclass(frozen=True)
class Voice:
    """A built-in voice: ``engine`` is ``flite`` or ``espeak-ng``, ``arg`` its voice name."""

    name: str
    engine: str
    arg: str
    description: str

    def speak(self, text: str) -> Iterator[np.ndarray]:
        """``text`` as 16 kHz float32 pieces, one per sentence."""
        for piece in split_text(text):
            yield _run_engine(self, piece)


_BUILTIN = (
    Voice("slt", "flite", "slt", "flite, US English, female"),
    Voice("rms", "flite", "rms", "flite, US English, male"),
    Voice("awb", "flite", "awb", "flite, Scottish English, male"),
    Voice("kal", "flite", "kal16", "flite, US English, male"),
    Voice("espeak-en-us", "espeak-ng", "en-us", "espeak-ng, US English"),
    Voice("espeak-en-gb", "espeak-ng", "en-gb", "espeak-ng, British English"),
)


def builtin_voices() -> dict[str, Voice]:
    """The built-in voices whose engine is installed, by name (first = the default)."""
    return {v.name: v for v in _BUILTIN if shutil.which(v.engine)}


def split_text(text: str) -> list[str]:
    """Sentences of ``text`` (whitespace folded), none longer than :data:`MAX_PIECE_CHARS`."""
    flat = " ".join(text.split())
    pieces: list[str] = []
    for sentence in re.split(r"(?<=[.!?;:])\s+", flat):
        while len(sentence) > MAX_PIECE_CHARS:
            head = sentence[:MAX_PIECE_CHARS]
            cut = max(head.rfind(", "), head.rfind(" "))
            cut = cut + 1 if cut > MAX_PIECE_CHARS // 3 else MAX_PIECE_CHARS
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence and any(c.isalnum() for c in sentence):
            pieces.append(sentence)
    return pieces


def _run_engine(voice: Voice, text: str) -> np.ndarray:
    if voice.engine == "flite":
        cmd = ["flite", "-voice", voice.arg, "-t", text, "-o", "/dev/stdout"]
    else:
        cmd = ["espeak-ng", "-v", voice.arg, "--stdout", "--", text]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=SYNTH_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TTSError(f"{voice.engine} failed: {exc}") from exc
    if done.returncode != 0 or len(done.stdout) <= 44:
        reason = done.stderr.decode(errors="replace").strip()[:200] or "no audio"
        raise TTSError(f"{voice.engine} failed ({done.returncode}): {reason}")
    return read_wav_bytes(done.stdout)


def read_wav_bytes(data: bytes) -> np.ndarray:
    """A 16-bit PCM WAV (header sizes may be wrong, as piped engines write them) -> 16 kHz."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise TTSError(f"the engine wrote no readable WAV: {exc}") from exc
    if width != 2:
        raise TTSError(f"the engine wrote {8 * width}-bit samples; 16-bit expected")
    pcm = np.frombuffer(frames[: len(frames) - len(frames) % (2 * channels)], "<i2")
    return to_mono_16k(pcm.reshape(-1, channels), rate)


@dataclass(frozen=True)
class RemoteVoice:
    """A voice of an OpenAI-compatible speech endpoint (``url`` is the full
    ``.../v1/audio/speech`` address). The PCM it streams is read as it arrives."""

    name: str
    url: str
    model: str
    api_key: str | None = None
    sample_rate: int = 24_000
    timeout_s: float = 10.0
    description: str = "remote"

    def speak(self, text: str) -> Iterator[np.ndarray]:
        for piece in split_text(text):
            yield from self._stream(piece)

    def _stream(self, text: str) -> Iterator[np.ndarray]:
        import json
        import urllib.error
        import urllib.request

        body = {"model": self.model, "input": text, "voice": self.name, "response_format": "pcm"}
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, json.dumps(body).encode(), headers)
        resampler = StreamingResampler(self.sample_rate)
        odd = b""
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                while chunk := response.read(self.sample_rate // 10 * 2):  # ~100 ms
                    chunk = odd + chunk
                    odd = chunk[len(chunk) - len(chunk) % 2 :]
                    pcm = np.frombuffer(chunk[: len(chunk) - len(odd)], "<i2")
                    if len(out := resampler.push(pcm)):
                        yield out
        except urllib.error.HTTPError as exc:
            detail = exc.read(200).decode(errors="replace").strip()
            raise TTSError(f"speech endpoint answered {exc.code}: {detail}") from exc
        except (OSError, urllib.error.URLError) as exc:  # refused, reset, timed out
            raise TTSError(f"speech endpoint {self.url} failed: {exc}") from exc
        if len(tail := resampler.flush()):
            yield tail


AnyVoice = Voice | RemoteVoice


def pick_voice(voices: Mapping[str, AnyVoice], name: str | None, default: str) -> AnyVoice:
    """``voices[name]`` (``None`` = ``default``); :class:`UnknownVoice` lists the choices."""
    key = default if name is None else name
    if key not in voices:
        known = ", ".join(voices) or "none (install flite or espeak-ng, or configure tts)"
        raise UnknownVoice(f"unknown voice {key!r}; known: {known}")
    return voices[key]


def synthesize(text: str, voice: AnyVoice) -> np.ndarray:
    """All of ``text`` at once (offline rendering)."""
    pieces = list(voice.speak(text))
    if not pieces:
        raise TTSError("the text has nothing to say (no letters or digits)")
    return np.concatenate(pieces).astype(np.float32)
