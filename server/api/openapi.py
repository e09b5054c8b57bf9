"""OpenAPI descriptions for routes that read their bodies and query strings themselves."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import HTTPException


def _error(reason: str) -> dict[str, Any]:
    return {
        "description": reason,
        "content": {"application/json": {"example": {"detail": "what was wrong"}}},
    }


def openapi_body(
    media_types: tuple[str, ...],
    description: str,
    errors: dict[int, str],
    binary: bool = True,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its body itself: the body's media types,
    the error responses with their reasons, and any query parameters read by hand."""
    schema = {"type": "string", "format": "binary"} if binary else {"type": "string"}
    extra: dict[str, Any] = {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {m: {"schema": schema} for m in media_types},
        },
        "responses": {str(code): _error(reason) for code, reason in errors.items()},
    }
    if parameters:
        extra["parameters"] = parameters
    return extra


def query(name: str, kind: str, description: str, **schema: Any) -> dict[str, Any]:
    """One OpenAPI query parameter."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": kind, **schema},
    }


def refuse_unknown(params: Iterable[str], known: Iterable[str]) -> None:
    """HTTPException 400 naming the query parameters outside ``known`` (``token`` is
    always known: a session token may come as ``?token=``, auth reads it)."""
    unknown = set(params) - set(known) - {"token"}
    if unknown:
        raise HTTPException(400, f"unknown parameters: {', '.join(sorted(unknown))}")
