"""The Python client: sessions, speech and text in, events and (with aiortc) video out.

``pip install headcast`` is enough for it (numpy and websockets); the WebRTC viewer needs
the ``client`` extra, the pipecat service the ``pipecat`` extra.
"""

from headcast.client.audio_socket import AudioSocket
from headcast.client.http_client import HeadcastClient, HeadcastError

__all__ = ["AudioSocket", "HeadcastClient", "HeadcastError"]
