"""Text a session says: ``POST /v1/sessions/{id}/say`` and the WebSocket's ``say``.

The text is synthesised sentence by sentence (:mod:`headcast.models.tts`) on a thread and
each sentence is queued as soon as it exists, so speech starts after the first sentence,
not the whole text. A session says one text at a time, in the order they came; an
interrupt drops what is still being synthesised.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

from headcast.models.audio import SAMPLE_RATE
from headcast.models.tts import (
    AnyVoice,
    RemoteVoice,
    TTSError,
    UnknownVoice,
    builtin_voices,
    pick_voice,
)
from headcast.server.live.session import Session
from headcast.server.settings import ServerSettings


class SayError(Exception):
    """A ``say`` that cannot be done: ``status`` is the HTTP code, ``reason`` says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Speaker:
    """The voices the server offers and the per-session queue of texts being said."""

    def __init__(self, settings: ServerSettings) -> None:
        self.voices: dict[str, AnyVoice] = dict(builtin_voices())
        tts = settings.tts
        if tts is not None:
            for name in tts.voices:
                self.voices[name] = RemoteVoice(
                    name, tts.url, tts.model, tts.api_key, tts.sample_rate, tts.timeout_s
                )
        self.default_voice = settings.default_voice or next(iter(self.voices), "")
        self.max_chars = settings.max_say_chars
        self._locks: weakref.WeakKeyDictionary[Session, asyncio.Lock] = weakref.WeakKeyDictionary()
        self._tasks: set[asyncio.Task[None]] = set()

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"name": n, "description": v.description, "default": n == self.default_voice}
            for n, v in self.voices.items()
        ]

    def check(self, text: Any, voice: Any) -> AnyVoice:
        """The voice to say ``text`` with, or :class:`SayError` (400/413) with a reason."""
        if not isinstance(text, str) or not text.strip():
            raise SayError(400, 'say needs "text": a non-empty string')
        if len(text) > self.max_chars:
            raise SayError(413, f"text of {len(text)} characters; at most {self.max_chars}")
        if voice is not None and not isinstance(voice, str):
            raise SayError(400, '"voice" must be a voice name')
        try:
            return pick_voice(self.voices, voice, self.default_voice)
        except UnknownVoice as exc:
            raise SayError(400, str(exc)) from exc

    async def say(self, session: Session, text: Any, voice_name: Any = None) -> dict[str, Any]:
        """Queue ``text`` on ``session``; returns once its first sentence is queued (so a
        failing engine is reported here), the rest follows in the background."""
        voice = self.check(text, voice_name)
        lock = self._locks.setdefault(session, asyncio.Lock())
        await lock.acquire()
        try:
            generation = session.interrupts
            pieces = voice.speak(text)
            first = await self._next(pieces)
            if first is None:
                raise SayError(400, "the text has nothing to say (no letters or digits)")
            if session.closed:
                raise SayError(404, f"session {session.id} closed while the text was synthesised")
            if session.interrupts != generation:
                raise SayError(409, "interrupted while the text was synthesised; nothing was said")
            session.push(first)
        except BaseException:
            lock.release()
            raise
        task = asyncio.create_task(self._rest(session, pieces, generation, lock))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return {
            "type": "say",
            "voice": voice.name,
            "chars": len(text),
            "first_ms": round(len(first) * 1000.0 / SAMPLE_RATE, 1),
        }

    async def _next(self, pieces: Iterator[np.ndarray]) -> np.ndarray | None:
        try:
            return await asyncio.to_thread(next, pieces, None)
        except TTSError as exc:
            raise SayError(502, f"text to speech failed: {exc}") from exc

    async def _rest(
        self, session: Session, pieces: Iterator[np.ndarray], generation: int, lock: asyncio.Lock
    ) -> None:
        try:
            while not session.closed and session.interrupts == generation:
                piece = await self._next(pieces)
                if piece is None or session.closed or session.interrupts != generation:
                    break
                session.push(piece)
        except SayError as exc:
            session.broadcast({"type": "error", "message": exc.reason})
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()  # stops a remote stream that is still being read
            lock.release()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
