"""WHEP (WebRTC-HTTP Egress Protocol, draft-ietf-wish-whep) for watching a session.

``POST /v1/sessions/{id}/whep`` with an ``application/sdp`` offer -> ``201 Created``, the
SDP answer and ``Location: /v1/sessions/{id}/whep/{resource}``; ``DELETE`` that resource
to leave. ``POST /v1/whep`` does the same for a new session with default settings, so a
plain WHEP player (GStreamer ``whepsrc``) can watch an avatar; deleting its resource
closes that session. Candidates are gathered before answering (no trickle ICE, so
``PATCH`` answers 405). Video is VP8 or H.264, audio Opus, as the offer prefers.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from fastapi import APIRouter, HTTPException, Request, Response

from headcast.server.api.bodies import read_body
from headcast.server.api.openapi import openapi_body
from headcast.server.api.sessions import SessionRequest, find_session, open_session
from headcast.server.live.encoders import forward_keyframe_requests
from headcast.server.live.ice import rtc_configuration
from headcast.server.live.session import MAX_PEERS, Session
from headcast.server.live.tracks import AvatarAudioTrack, AvatarVideoTrack
from headcast.server.state import AppState, get_state

log = logging.getLogger(__name__)
router = APIRouter(tags=["whep"])
SDP_TYPE = "application/sdp"
MAX_SDP_BYTES = 64 * 1024
FINGERPRINT_BYTES = {"sha-256": 32, "sha-384": 48, "sha-512": 64}  # what aiortc verifies


async def _read_offer(request: Request) -> str:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != SDP_TYPE:
        raise HTTPException(415, f"the offer must be sent as {SDP_TYPE}")
    body = await read_body(request, MAX_SDP_BYTES, "SDP offer")
    try:
        sdp = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(400, "SDP offer is not UTF-8 text") from exc
    if not sdp.startswith("v=0") or "m=" not in sdp:
        raise HTTPException(400, "not an SDP offer (expected 'v=0' and media sections)")
    if "m=video" not in sdp and "m=audio" not in sdp:
        raise HTTPException(400, "the offer has neither a video nor an audio section")
    prints = [line[len("a=fingerprint:") :].strip() for line in sdp.splitlines()
              if line.startswith("a=fingerprint:")]  # fmt: skip
    if not prints:
        raise HTTPException(400, "the offer has no DTLS fingerprint (a=fingerprint)")
    for value in prints:
        if not _valid_fingerprint(value):
            raise HTTPException(
                400, f"bad DTLS fingerprint {value[:40]!r}: expected sha-256, sha-384 or "
                "sha-512 and that many hex bytes"
            )  # fmt: skip
    if not any(_receives(m) for m in sdp.split("\nm=")[1:]):
        raise HTTPException(
            400, "the offer receives no media (every section is sendonly or inactive)"
        )
    return sdp


def _valid_fingerprint(value: str) -> bool:
    """``sha-256 AB:CD:...`` with as many bytes as the hash has (what DTLS can verify)."""
    algorithm, _, digest = value.partition(" ")
    size = FINGERPRINT_BYTES.get(algorithm.lower())
    hex_bytes = rf"[0-9A-Fa-f]{{2}}(?::[0-9A-Fa-f]{{2}}){{{(size or 1) - 1}}}"
    return size is not None and re.fullmatch(hex_bytes, digest.strip()) is not None


def _receives(section: str) -> bool:
    """Whether an offer's media section lets the viewer receive (sendrecv by default)."""
    return "a=sendonly" not in section and "a=inactive" not in section


async def answer(state: AppState, session: Session, sdp: str) -> tuple[str, str]:
    """Negotiate one viewer; returns (resource id, SDP answer). HTTP errors on bad SDP,
    404 when the session closes meanwhile (its close waits for the answer)."""
    async with session.negotiation:
        if session.closed:
            raise HTTPException(404, f"session {session.id} was closed")
        return await _negotiate(state, session, sdp)


async def _negotiate(state: AppState, session: Session, sdp: str) -> tuple[str, str]:
    if len(session.peers) >= MAX_PEERS:
        raise HTTPException(409, f"session already has {MAX_PEERS} viewers")
    pc = RTCPeerConnection(rtc_configuration(state.settings.ice_servers))
    rid = session.add_peer(pc)
    state.metrics.peers_created += 1
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        tracks: list[MediaStreamTrack] = []
        kinds = {t.kind for t in pc.getTransceivers()}
        if "video" in kinds:
            tracks.append(AvatarVideoTrack(session, encode_off_loop=state.encode_off_loop))
        if "audio" in kinds:
            tracks.append(AvatarAudioTrack(session))
        for track in tracks:
            sender = pc.addTrack(track)
            if isinstance(track, AvatarVideoTrack):
                forward_keyframe_requests(sender, track.request_keyframe)
        session.add_tracks(rid, tracks)
        await pc.setLocalDescription(await pc.createAnswer())
    except HTTPException:
        await session.remove_peer(rid)
        raise
    except Exception as exc:  # aiortc raises ValueError/KeyError/... on SDP it cannot use
        await session.remove_peer(rid)
        if session.closed:
            raise HTTPException(404, f"session {session.id} was closed") from exc
        state.metrics.peers_failed += 1
        log.info("rejected offer for session %s: %r", session.id, exc)
        detail = str(exc).strip()
        if not detail or isinstance(exc, RuntimeError | StopIteration):  # aiortc internals
            detail = "malformed or unsupported media description"
        raise HTTPException(400, f"cannot negotiate this offer: {detail}") from exc
    if session.closed:  # deleted while this offer was answered
        await session.remove_peer(rid)
        raise HTTPException(404, f"session {session.id} was closed")
    return rid, pc.localDescription.sdp


def _created(session: Session, rid: str, sdp: str) -> Response:
    location = f"/v1/sessions/{session.id}/whep/{rid}"
    return Response(
        content=sdp,
        status_code=201,
        media_type=SDP_TYPE,
        headers={"Location": location, "ETag": f'"{rid}"', "X-Session-Id": session.id},
    )


OFFER_ERRORS = {
    400: "malformed SDP, no DTLS fingerprint, nothing to receive, or not negotiable",
    404: "unknown session",
    409: f"the session already has {MAX_PEERS} viewers",
    413: f"SDP offer over {MAX_SDP_BYTES} bytes",
    415: f"not sent as {SDP_TYPE}",
}
OFFER_DOC = openapi_body((SDP_TYPE,), "the viewer's SDP offer", OFFER_ERRORS, binary=False)
ANSWER: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "the SDP answer; the resource URL in Location",
        "content": {SDP_TYPE: {"schema": {"type": "string"}}},
    }
}


@router.post(
    "/v1/sessions/{sid}/whep",
    status_code=201,
    response_class=Response,
    openapi_extra=OFFER_DOC,
    responses=ANSWER,
)
async def whep_offer(sid: str, request: Request) -> Response:
    """WHEP: SDP offer in, SDP answer out, resource URL in ``Location``."""
    state = get_state(request)
    session = find_session(state, sid, request)
    rid, sdp = await answer(state, session, await _read_offer(request))
    return _created(session, rid, sdp)


@router.post(
    "/v1/whep",
    status_code=201,
    response_class=Response,
    openapi_extra={
        **OFFER_DOC,
        "responses": {
            **OFFER_DOC["responses"],
            "503": {"description": "no capacity for another session"},
        },
    },
    responses=ANSWER,
)
async def whep_default(request: Request) -> Response:
    """WHEP on a new default session (closed when its resource is deleted)."""
    state = get_state(request)
    sdp = await _read_offer(request)
    session = await open_session(state, SessionRequest(), request)
    session.close_with_last_viewer(lambda: state.close_session(session.id))
    try:
        rid, answer_sdp = await answer(state, session, sdp)
    except HTTPException:
        await state.close_session(session.id)
        raise
    return _created(session, rid, answer_sdp)


@router.delete("/v1/sessions/{sid}/whep/{rid}", status_code=200)
async def whep_delete(sid: str, rid: str, request: Request) -> Response:
    state = get_state(request)
    session = find_session(state, sid, request)
    if not await session.drop_viewer(rid):
        raise HTTPException(404, f"unknown WHEP resource {rid!r}")
    return Response(status_code=200)


@router.patch(
    "/v1/sessions/{sid}/whep/{rid}",
    status_code=405,
    response_class=Response,
    responses={405: {"description": "trickle ICE is not supported (Allow: DELETE)"}},
)
async def whep_patch(sid: str, rid: str) -> Response:
    """Trickle ICE is not supported: the answer already holds every candidate."""
    return Response(status_code=405, headers={"Allow": "DELETE"})
