"""A pipecat bot with a headcast face, in the browser over pipecat's SmallWebRTC transport.

Runs with no API keys: the "LLM" is an echo, the TTS is flite (Debian ``flite``), so the
bot says back whatever is typed. Swap in your STT, LLM and TTS services; the avatar part
(``HeadcastVideoService`` between the TTS and ``transport.output()``) stays as it is.

    pip install '.[pipecat]' aiohttp   # from a clone: the light client, no renderer here
    headcast serve                                  # on this or another machine
    python examples/pipecat_avatar.py --headcast http://127.0.0.1:8080
    # open http://127.0.0.1:7860, press Start, type a line, press Enter

Without ``--headcast`` the renderer runs inside this process (needs the server extra).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import wave
from io import BytesIO
from typing import Any

from aiohttp import web
from pipecat.frames.frames import (
    Frame,
    TextFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
from pipecat.workers.runner import WorkerRunner

from headcast.client.pipecat_service import HeadcastVideoService

GREETING = "Hello! Type something and I will say it back to you."
PAGE = """<!doctype html><meta charset="utf-8"><title>pipecat + headcast</title>
<body style="font:16px system-ui;background:#111;color:#eee">
<video id="v" autoplay playsinline style="width:384px;height:384px;background:#000"></video>
<p><button id="start">Start</button> <input id="text" size="40" placeholder="type, then Enter"></p>
<script>
const pc = new RTCPeerConnection();
pc.addTransceiver('audio', {direction: 'sendrecv'});
pc.addTransceiver('video', {direction: 'sendrecv'});
pc.ontrack = (e) => { const v = document.getElementById('v');
  v.srcObject = v.srcObject || new MediaStream(); v.srcObject.addTrack(e.track); };
document.getElementById('start').onclick = async () => {
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((r) => { if (pc.iceGatheringState === 'complete') r();
    else pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); });
  const answer = await (await fetch('/offer', {method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({sdp: pc.localDescription.sdp, type: 'offer'})})).json();
  await pc.setRemoteDescription(answer);
};
document.getElementById('text').onkeydown = (e) => { if (e.key !== 'Enter') return;
  fetch('/say', {method: 'POST', body: e.target.value}); e.target.value = ''; };
</script>"""


class FliteTTS(FrameProcessor):
    """TextFrame -> TTS audio frames, with flite (stands in for a real TTS service)."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, TextFrame):
            await self.push_frame(frame, direction)
            return
        cmd = ["flite", "-voice", "slt", "-t", frame.text, "-o", "/dev/stdout"]
        wav = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, check=True)
        with wave.open(BytesIO(wav.stdout)) as w:
            rate, pcm = w.getframerate(), w.readframes(w.getnframes())
        await self.push_frame(TTSStartedFrame())
        step = rate // 10 * 2  # 100 ms chunks, as a streaming TTS sends them
        for i in range(0, len(pcm), step):
            await self.push_frame(
                TTSAudioRawFrame(audio=pcm[i : i + step], sample_rate=rate, num_channels=1)
            )
        await self.push_frame(TTSStoppedFrame())


async def run_bot(connection: SmallWebRTCConnection, headcast_url: str | None, app: Any) -> None:
    transport = SmallWebRTCTransport(
        webrtc_connection=connection,
        params=TransportParams(
            audio_out_enabled=True,
            video_out_enabled=True,
            video_out_is_live=True,
            video_out_width=384,
            video_out_height=384,
        ),
    )
    avatar = HeadcastVideoService(url=headcast_url, size=384)
    pipeline = Pipeline([transport.input(), FliteTTS(), avatar, transport.output()])
    worker = PipelineWorker(pipeline, params=PipelineParams(audio_out_sample_rate=16_000))
    app["workers"].append(worker)

    @transport.event_handler("on_client_connected")
    async def greet(_transport: Any, _client: Any) -> None:
        await worker.queue_frame(TextFrame(GREETING))

    @transport.event_handler("on_client_disconnected")
    async def leave(_transport: Any, _client: Any) -> None:
        await worker.cancel()

    await WorkerRunner(handle_sigint=False).run(worker)


def make_app(headcast_url: str | None) -> web.Application:
    app = web.Application()
    app["workers"] = []
    app["tasks"] = set()

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def offer(request: web.Request) -> web.Response:
        body = await request.json()
        connection = SmallWebRTCConnection()
        await connection.initialize(sdp=body["sdp"], type=body["type"])
        task = asyncio.create_task(run_bot(connection, headcast_url, app))
        app["tasks"].add(task)
        task.add_done_callback(app["tasks"].discard)
        return web.json_response(connection.get_answer())

    async def say(request: web.Request) -> web.Response:
        text = (await request.text()).strip()
        for worker in app["workers"]:
            if text:
                await worker.queue_frame(TextFrame(text))
        return web.Response(status=204)

    app.router.add_get("/", page)
    app.router.add_post("/offer", offer)
    app.router.add_post("/say", say)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--headcast", help="headcast server URL (default: in this process)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument(
        "--ice-host", action="append", default=[], help="gather WebRTC candidates on this only"
    )
    args = parser.parse_args()
    if args.ice_host:
        from headcast.client.ice import restrict_host_addresses

        restrict_host_addresses(args.ice_host)
    web.run_app(make_app(args.headcast), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
