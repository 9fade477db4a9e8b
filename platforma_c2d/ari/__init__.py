"""The Asterisk adapter: ARI REST calls (``client``) and the event WebSocket (``events``).

A thin adapter of our own over aiohttp (REST) and websockets (events); see
docs/decisions/0001-ari-client.md for why no third-party ARI client is used.
"""

from platforma_c2d.ari.client import AriClient, AriError, AriUnavailable
from platforma_c2d.ari.events import EventStream

__all__ = ["AriClient", "AriError", "AriUnavailable", "EventStream"]
