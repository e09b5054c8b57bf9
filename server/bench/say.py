"""``headcast bench say``: how soon typed text is spoken, beside the same speech sent as audio.

A real ``headcast serve`` on 127.0.0.1 (its own process) and one session. For each
sentence, in alternating order: ``{"type": "say"}`` over the session's WebSocket, and the
same sentence synthesised here by the same voice and sent as PCM; each is timed from the
send to the server's ``speech_started`` event (when the first frame of that speech is
sent). The difference is what text to speech costs. A browser adds its jitter buffer on
top of both (the demo page's push→mouth statistic includes it).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from headcast.models.sizes import FRAME_SIZES
from headcast.server.bench.loopback import serve

HELP = "typed text -> speech start (say) vs. the same audio pushed as PCM"
SENTENCES = (
    "Hello, and welcome.",
    "Can you hear me clearly?",
    "Let me show you what I can do.",
    "Bob made a map of the big pond.",
    "That is all for today, thank you.",
    "Sure, I can help with that.",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=2, help="times each sentence is said")
    parser.add_argument("--voice", default=None, help="voice (default: the server's)")
    parser.add_argument("--size", type=int, default=256, choices=FRAME_SIZES, help="frame size")
    parser.add_argument("--provider", choices=["auto", "cpu", "cuda"], default="auto")


async def _time_to_speech(sock: object, send: object) -> float:
    from headcast.client.audio_socket import AudioSocket

    assert isinstance(sock, AudioSocket)
    sent = await send()  # type: ignore[operator]
    started = sock.arrived_at(await sock.next_event("speech_started", within_s=10))
    await sock.next_event("speech_ended", within_s=30)
    await asyncio.sleep(0.3)
    return (started - sent) * 1000.0


async def _measure(url: str, rounds: int, voice: str | None) -> dict[str, list[float]]:
    from headcast.client.headcast_client import HeadcastClient
    from headcast.models.tts import builtin_voices, pick_voice, synthesize

    client = HeadcastClient(url)
    listed = await client.voices()
    chosen = pick_voice(builtin_voices(), voice, listed["default"])
    session = await client.create_session()
    times: dict[str, list[float]] = {"say": [], "pcm": []}
    async with await client.connect(session["id"]) as sock:
        for i in range(rounds * len(SENTENCES)):
            text = SENTENCES[i % len(SENTENCES)]
            pcm = synthesize(text, chosen)

            async def say(text: str = text) -> float:
                return await sock.say(text, chosen.name)

            async def push(pcm: object = pcm) -> float:
                t = await sock.send_pcm(pcm)  # type: ignore[arg-type]
                await sock.send_control({"type": "end_of_utterance"})
                return t

            order = (("say", say), ("pcm", push)) if i % 2 == 0 else (("pcm", push), ("say", say))
            for name, send in order:
                times[name].append(await _time_to_speech(sock, send))
    await client.close_session(session["id"])
    return times


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def run(args: argparse.Namespace) -> int:
    with serve(args.size, 25, args.provider) as (url, _pid):
        times = asyncio.run(_measure(url, max(1, args.rounds), args.voice))
    say, pcm = times["say"], times["pcm"]
    print(f"send -> speech_started over {len(say)} sentences (ms), 127.0.0.1, size {args.size}")
    print(f"{'':12}{'median':>10}{'p95':>10}{'max':>10}")
    for name, values in (("say (text)", say), ("pcm (audio)", pcm)):
        print(f"{name:12}{statistics.median(values):10.1f}{_p95(values):10.1f}{max(values):10.1f}")
    extra = statistics.median(s - p for s, p in zip(say, pcm, strict=True))
    print(f"text to speech adds {extra:.1f} ms (median of the per-sentence differences)")
    return 0
