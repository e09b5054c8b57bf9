"""Server settings: ``configs/server.yaml`` < ``HEADCAST_SERVE__*`` env vars < CLI flags."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from headcast.models.config import CONFIG_DIR, StrictModel, load_config
from headcast.models.sizes import FRAME_SIZES

SERVER_CONFIG = CONFIG_DIR / "server.yaml"
ENV_PREFIX = "HEADCAST_SERVE"


class IceServer(StrictModel):
    """One STUN or TURN server, as in the WebRTC ``RTCIceServer`` dictionary."""

    urls: list[str] = Field(min_length=1)
    username: str | None = None
    credential: str | None = None


class RemoteTTS(StrictModel):
    """An OpenAI-compatible speech endpoint (``POST url`` with ``model``, ``input``,
    ``voice``, ``response_format: pcm`` -> 16-bit mono PCM at ``sample_rate``)."""

    url: str = Field(pattern=r"^https?://")
    model: str = "tts-1"
    api_key: str | None = None
    #: the endpoint's voices offered to clients (names as the endpoint knows them)
    voices: tuple[str, ...] = Field(min_length=1)
    sample_rate: int = Field(default=24_000, ge=8_000, le=48_000)
    #: connect and read timeout (s): a slower endpoint is reported as failed
    timeout_s: float = Field(default=10.0, gt=0.0, le=120.0)


class ServerSettings(StrictModel):
    """Everything ``headcast serve`` can be told."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    #: avatar pack directory or name served by default; None = the built-in avatar
    avatar: str | None = None
    #: where uploaded portraits are enrolled into avatar packs
    avatars_dir: Path = Path("data/avatars")
    #: warp (CPU fast path), warp-onnx (ONNX graph, CUDA when present), auto (GPU: onnx),
    #: edtalk (the EDTalk neural generator; needs edtalk_weights, see docs/edtalk.md)
    renderer_backend: Literal["auto", "warp", "warp-onnx", "edtalk"] = "auto"
    #: folder with the EDTalk checkpoints and their ONNX export (backend edtalk)
    edtalk_weights: Path | None = None
    #: precision of EDTalk's per-frame graph (fp16 is for the CUDA provider)
    edtalk_precision: Literal["fp32", "fp16"] = "fp32"
    #: "auto" = CUDA when present, else CPU
    provider: Literal["auto", "cpu", "cuda"] = "auto"
    #: motion model path; None = the one shipped in the repo
    motion_model: Path | None = None
    default_size: int = Field(default=512, ge=64, le=1024)
    allowed_sizes: tuple[int, ...] = FRAME_SIZES
    default_fps: int = Field(default=25, ge=10, le=30)
    #: host addresses ICE gathers candidates on; [] = every interface except loopback
    #: (aioice's own rule). Tests and benchmarks use ["127.0.0.1"].
    ice_host_addresses: tuple[str, ...] = ("127.0.0.1",)
    #: STUN/TURN servers offered to aiortc (and to browsers by the client config)
    ice_servers: tuple[IceServer, ...] = ()
    #: origins allowed by CORS; never "*" by default
    cors_origins: tuple[str, ...] = ("http://localhost:8080", "http://127.0.0.1:8080")
    #: API key for site back ends; set = auth on (session tokens required on /v1/). At
    #: least 16 characters: a page's token must not let anyone guess it offline (e.g.
    #: `python -c "import secrets; print(secrets.token_urlsafe(24))"`)
    api_key: str | None = Field(default=None, min_length=16)
    #: addresses or networks of reverse proxies whose X-Forwarded-For is believed (the
    #: client address throttling and logs use); () = none, the peer's address counts
    trusted_proxies: tuple[str, ...] = ()
    #: HMAC secret for session tokens; None = derived from api_key
    token_secret: str | None = Field(default=None, min_length=16)
    #: longest lifetime a minted session token may ask for (s)
    token_max_ttl_s: float = Field(default=3600.0, gt=0.0)
    max_sessions: int = Field(default=16, ge=1)
    #: fraction of the render workers' measured capacity admission may fill
    admission_headroom: float = Field(default=0.8, gt=0.0, le=1.0)
    #: also refuse sessions when the server process's own interpreter-bound work (event
    #: loop, RTP) would pass that headroom of one core; off only where clients run in
    #: the server's process and their CPU cannot be told apart (the test harness)
    admit_by_server_process: bool = True
    #: render worker threads on CPU; 0 = one per core
    render_workers: int = Field(default=0, ge=0)
    #: processes that run sessions' pipelines (CPU, warp backend); -1 = two per core (at
    #: most 32), 0 = none (pipelines run on the worker threads, sharing the event loop's interpreter)
    render_processes: int = Field(default=-1, ge=-1, le=64)
    #: threads aiortc's audio and video encoders share; 0 = asyncio's default pool
    encoder_threads: int = Field(default=0, ge=0, le=64)
    #: where the video tracks VP8-encode: on the event loop (cheapest on a few cores), on
    #: the encoder threads (the event loop is one core; many sessions need more), or auto
    #: (threads on more than ENCODE_ON_LOOP_MAX_CORES cores)
    video_encode: Literal["auto", "loop", "threads"] = "auto"
    #: output delay on top of the look-ahead in whole frames (ms): time to render and send
    render_budget_ms: float = Field(default=40.0, gt=0.0, le=1000.0)
    render_margin_ms: float = Field(default=0.0, ge=0.0, le=500.0)
    #: speech pushed after silence, with more already buffered, starts on the silence not
    #: yet sent instead of a whole output delay later (lips and sound stay aligned)
    early_onsets: bool = True
    #: live input (arriving at about real time) buffered past this drains by shortening
    #: its pauses, never its speech, so a stall does not leave a lasting delay (ms);
    #: 0 = never. Speech pushed faster than real time is played whole.
    drain_backlog_above_ms: float = Field(default=120.0, ge=0.0, le=10_000.0)
    #: longest speech a session buffers ahead of playback (s); older audio is dropped
    max_buffered_audio_s: float = Field(default=60.0, gt=0.0)
    #: largest single WebSocket message / HTTP upload accepted (bytes)
    max_message_bytes: int = Field(default=1 << 20, ge=1024)
    max_upload_bytes: int = Field(default=50 << 20, ge=1024)
    #: longest decoded speech taken from one upload to a session / one render job (s): a
    #: small compressed file can hold hours
    max_upload_audio_s: float = Field(default=600.0, gt=0.0)
    max_render_audio_s: float = Field(default=3600.0, gt=0.0)
    #: a session with no viewer and no socket for this long is closed (s)
    idle_session_timeout_s: float = Field(default=300.0, gt=0.0)
    #: a session whose viewers have all left (a closed or reloaded tab) and that has no
    #: socket is closed after this long (s): time for that page to reconnect
    viewer_gone_timeout_s: float = Field(default=5.0, gt=0.0)
    #: a session nobody ever watched or opened a socket to is closed sooner (s): it holds
    #: a share of the admission capacity
    unclaimed_session_timeout_s: float = Field(default=60.0, gt=0.0)
    #: a viewer whose WebRTC connection is not up this long after its answer is dropped
    viewer_connect_timeout_s: float = Field(default=20.0, gt=0.0)
    #: events queued for a slow WebSocket client before the oldest are dropped
    max_pending_events: int = Field(default=256, ge=8)
    #: voice a ``say`` without one uses: a built-in one (slt, rms, awb, kal: flite;
    #: espeak-en-us, espeak-en-gb: espeak-ng) or one of tts.voices; None = the first offered
    default_voice: str | None = None
    #: longest text one ``say`` takes (characters)
    max_say_chars: int = Field(default=2000, ge=1, le=100_000)
    #: an OpenAI-compatible text-to-speech endpoint whose voices are offered as well
    tts: RemoteTTS | None = None
    #: a Python with headcast[livekit] installed, which runs the LiveKit avatar workers
    #: (POST /v1/livekit/workers); None = LiveKit workers are off (501)
    livekit_worker_python: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(
                    f"trusted_proxies: {entry!r} is not an address or network"
                ) from exc
        return value

    @field_validator("allowed_sizes")
    @classmethod
    def _sizes(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(s < 64 or s > 1024 or s % 16 for s in value):
            raise ValueError("sizes must be multiples of 16 between 64 and 1024")
        return value

    @model_validator(mode="after")
    def _default_size_allowed(self) -> ServerSettings:
        # a default no session may use would refuse every session that does not name one
        if self.default_size not in self.allowed_sizes:
            choices = ", ".join(str(s) for s in self.allowed_sizes)
            raise ValueError(
                f"default_size {self.default_size} is not one of allowed_sizes ({choices}): "
                "sessions that name no size would all be refused; set default_size "
                "(serve --size) to one of them"
            )
        return self


def load_settings(path: Path | None = None, **overrides: object) -> ServerSettings:
    """Settings from ``configs/server.yaml`` (when present) overlaid key by key with
    ``path`` (``--config FILE``: only the keys it changes), then env and overrides."""
    layers = [p for p in (SERVER_CONFIG, path) if p is not None]
    layers = [p for i, p in enumerate(layers) if p.exists() or i > 0]  # a missing --config fails
    if len(layers) == 2 and layers[0].resolve() == layers[1].resolve():
        layers = layers[:1]
    return load_config(ServerSettings, layers, ENV_PREFIX, overrides)
