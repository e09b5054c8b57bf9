"""server/api/openapi.py: raw request bodies and their errors in the OpenAPI document."""

from __future__ import annotations

from headcast.server.settings import ServerSettings


def test_openapi_documents_raw_bodies_and_their_errors() -> None:
    from headcast.server.app import create_app

    paths = create_app(ServerSettings()).openapi()["paths"]
    offer = paths["/v1/sessions/{sid}/whep"]["post"]
    assert list(offer["requestBody"]["content"]) == ["application/sdp"]
    assert {"201", "400", "409", "413", "415"} <= set(offer["responses"])
    assert "application/sdp" in offer["responses"]["201"]["content"]
    assert set(paths["/v1/sessions/{sid}/whep/{rid}"]["patch"]["responses"]) >= {"405"}
    assert "200" not in paths["/v1/sessions/{sid}/whep/{rid}"]["patch"]["responses"]
    render = paths["/v1/renders"]["post"]
    assert "multipart/form-data" in render["requestBody"]["content"]
    assert {p["name"] for p in render["parameters"]} >= {"avatar", "size", "fps", "seed"}
    for path in ("/v1/sessions/{sid}/audio", "/v1/avatars", "/v1/sessions/{sid}/control"):
        assert paths[path]["post"]["requestBody"]["content"], path
