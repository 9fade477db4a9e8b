"""The ARI event WebSocket, with reconnect.

One connection per app name, ``subscribeAll=false`` (field report C09).
While connected, every event is handed to ``on_event`` in arrival order; an
exception in the handler is logged and never stops the stream. When the
socket drops (Asterisk restart, network) it reconnects with capped
exponential backoff — also after a clean close, so there is no hot loop
(field report C08). ``on_connected`` runs after every (re)connect, before
further events are read, so the service can reconcile its journal with
Asterisk; ``on_disconnected`` runs when the connection is lost. With
``sockets`` (``[ari] requests = "websocket"``, :mod:`platforma_c2d.ari.wsrequests`)
the socket also carries the client's requests once ``on_connected`` is done,
and Asterisk's ``RESTResponse`` answers go to them, not to ``on_event``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import websockets
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK

from platforma_c2d.ari.wsrequests import RESPONSE_TYPE, SocketRequests

log = logging.getLogger(__name__)

Handler = Callable[[dict], Awaitable[None]]


class EventStream:
    """Reads ``/ari/events?app=<app>`` for ever (until ``stop()``).

    ``url``: Asterisk's HTTP base (``http://127.0.0.1:8088``);
    ``max_backoff_s``: ceiling of the reconnect delay in seconds (starts at
    0.25 s, doubles). ``connected`` tells whether the socket is up now;
    ``reconnects`` counts successful connects after the first.
    """

    def __init__(self, url: str, username: str, password: str, app: str,
                 on_event: Handler, on_connected: Callable[[], Awaitable[None]],
                 on_disconnected: Callable[[], Awaitable[None]], max_backoff_s: float = 30.0,
                 sockets: SocketRequests | None = None):
        ws_url = url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        self.ws_url = f"{ws_url}/ari/events?app={app}&subscribeAll=false"
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self.on_event, self.on_connected, self.on_disconnected = on_event, on_connected, on_disconnected
        self.max_backoff_s = max_backoff_s
        self.sockets = sockets
        self.connected = False
        self.connects = 0
        self._stop = asyncio.Event()
        self._ws = None

    @property
    def reconnects(self) -> int:
        """Successful connects after the first one."""
        return max(0, self.connects - 1)

    async def run(self) -> None:
        """Connect, read, reconnect — until ``stop()``."""
        backoff = 0.25
        said, said_at = None, 0.0
        while not self._stop.is_set():
            try:
                async with connect(self.ws_url, additional_headers=self._headers,
                                   open_timeout=5, ping_interval=10, ping_timeout=10,
                                   max_size=2**22) as ws:
                    self._ws = ws
                    self.connected = True
                    self.connects += 1
                    log.info("ARI event socket connected", extra={"event": "ari_connected"})
                    backoff, said = 0.25, None
                    try:
                        await self.on_connected()
                    except Exception:  # noqa: BLE001 - never kill the stream
                        log.exception("reconcile after connect failed")
                    if self.sockets is not None:
                        # Not before: the reconcile's requests wait for answers this loop reads.
                        self.sockets.attach(ws)
                    async for raw in frames(ws):
                        try:
                            event = orjson.loads(raw)
                        except ValueError:
                            log.warning("ARI sent a frame that is not JSON")
                            continue
                        if (self.sockets is not None and isinstance(event, dict)
                                and event.get("type") == RESPONSE_TYPE):
                            self.sockets.resolve(event)
                            continue
                        try:
                            await self.on_event(event)
                        except Exception:  # noqa: BLE001 - one bad event must not stop the app
                            log.exception("handler failed for ARI event %s", event.get("type"))
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as exc:
                why = unavailable_reason(exc)
                now = asyncio.get_running_loop().time()
                # Once per reason (again after a minute), not on every retry.
                if not self._stop.is_set() and (why != said or now - said_at > 60):
                    log.warning("ARI event socket unavailable: %s", why, extra={"event": "ari_unavailable"})
                    said, said_at = why, now
            finally:
                self._ws = None
                if self.sockets is not None:
                    self.sockets.detach()
                if self.connected:
                    self.connected = False
                    try:
                        await self.on_disconnected()
                    except Exception:  # noqa: BLE001
                        log.exception("disconnect handler failed")
            if self._stop.is_set():
                break
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=backoff)
            except asyncio.TimeoutError:
                pass
            backoff = min(backoff * 2, self.max_backoff_s)

    async def stop(self) -> None:
        """Close the socket and end ``run()``."""
        self._stop.set()
        if self._ws is not None:
            await self._ws.close()


async def frames(ws) -> AsyncIterator[bytes]:
    """The frames of an open socket as they came, undecoded (``bytes``), until it
    closes normally; a socket lost otherwise raises ``ConnectionClosedError``.

    The JSON parser reads the UTF-8 bytes itself (docs/decisions/0020), so the
    text of every event is not first decoded into a ``str`` only to be parsed."""
    try:
        while True:
            yield await ws.recv(decode=False)
    except ConnectionClosedOK:
        return


def unavailable_reason(exc: BaseException) -> str:
    """Why the event socket could not be opened or was lost, for an administrator (one line).

    ``websockets`` ``InvalidStatus`` 401 → the ARI credentials; other
    statuses by number; ``OSError`` by its text (connection refused…).
    """
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status == 401:
        return ("Asterisk refused the ARI username/password (401): check [ari] username and "
                "password against ari.conf")
    if status is not None:
        return f"Asterisk answered {status} to the event socket request ({type(exc).__name__})"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):   # an OSError too, since 3.11
        return "no answer in time"
    if isinstance(exc, OSError):
        return f"{exc.strerror or type(exc).__name__}"
    return type(exc).__name__
