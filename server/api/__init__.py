"""The HTTP and WebSocket surface: routers, the auth and origin guards, request bodies.

Each router module exposes ``router``; :mod:`server.app` includes them. Modules here
may import :mod:`server.live`, never the other way round.
"""
