"""The query parameters of ``POST /v1/renders``: what a render job is asked for."""

from __future__ import annotations

from fastapi import HTTPException

from headcast.models.offline import FULL, RenderOptions
from headcast.models.take import POSES, EmotionCue, check_emotions, cues_from_json
from headcast.server.api.openapi import refuse_unknown


def render_options(
    params: dict[str, str], workers: int, max_audio_s: float | None = None
) -> RenderOptions:
    """The query parameters of ``POST /v1/renders`` -> RenderOptions; HTTPException 400
    with the reason for an unknown or bad one."""
    refuse_unknown(params, ("avatar", "size", "fps", "emotion", "pose", "seed", "filename"))
    try:
        size_arg = params.get("size", "512")
        fps = int(params.get("fps", "25"))
        seed = int(params["seed"]) if "seed" in params else None
    except ValueError as exc:
        raise HTTPException(400, f"fps and seed must be integers ({exc})") from exc
    if seed is not None and seed < 0:
        raise HTTPException(400, f"seed must be 0 or more, got {seed}")
    pose = params.get("pose", "natural")
    if pose not in POSES:
        raise HTTPException(400, f"pose must be one of {', '.join(POSES)}")
    emotion = params.get("emotion", "neutral")
    cues: tuple[EmotionCue, ...] = ()
    try:
        if emotion.lstrip().startswith("["):  # a JSON timeline, as `headcast render` takes
            cues, emotion = cues_from_json(emotion), "neutral"
        check_emotions(emotion, cues)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    except KeyError as exc:
        raise HTTPException(400, str(exc.args[0])) from exc
    try:
        size = FULL if size_arg == FULL else int(size_arg)
        return RenderOptions(
            fps=fps,
            size=size,
            emotion=emotion,
            cues=cues,
            pose="still" if pose == "still" else "natural",
            seed=seed,
            workers=workers,
            max_audio_s=max_audio_s,
        )
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
