"""ARI requests sent over the event WebSocket (``[ari] requests = "websocket"``).

Asterisk 22.4 and later take a REST request as a text frame on the app's
event socket and answer it there (res/ari/ari_websocket_requests.c)::

    → {"type": "RESTRequest", "request_id": "7", "method": "POST",
       "uri": "channels/c2d-1/ring", "query_strings": [{"name": .., "value": ..}],
       "content_type": "application/json", "message_body": "{...}"}
    ← {"type": "RESTResponse", "request_id": "7", "status_code": 204,
       "reason_phrase": "No Content", "uri": "channels/c2d-1/ring",
       "content_type": "application/json", "message_body": "{...}"}

The ``uri`` is relative to ``/ari/`` (no leading ``/``: Asterisk would find
no resource); the query goes as ``query_strings`` pairs, so nothing is
percent-encoded; the body is JSON text inside the frame. The answer is an
event of the app: the app's event filter applies to it, so the filter must
allow ``RESTResponse`` (:meth:`AriClient.set_event_filter` adds it).

Asterisk still checks the upgrade request's credentials on every request
(``authenticate_user`` with the upgrade headers, res/res_ari.c), and serves
one socket's requests one after the other on that socket's thread. What it
saves is a TCP connection's HTTP parsing and answer per request, on both
sides. Decision 0021 has the figures.

The socket carries requests only once it has answered one (:meth:`probe`,
run after every connect): until then, while it is down, and for an
Asterisk that never answers (older than 22.4, or a filter without
``RESTResponse``), the client sends its requests over HTTP.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import orjson
from websockets.exceptions import ConnectionClosed

log = logging.getLogger(__name__)

#: The event type of Asterisk's answers (also what the event filter must allow).
RESPONSE_TYPE = "RESTResponse"

#: How long the first request after a connect may take before the socket is judged mute.
PROBE_TIMEOUT_S = 3.0


class SocketGone(Exception):
    """The socket closed (or was never ready) before Asterisk answered the request;
    ``sent``: whether the request had been written (Asterisk may have run it)."""

    def __init__(self, message: str, sent: bool = True):
        super().__init__(message)
        self.sent = sent


class SocketRequests:
    """The requests in flight on one event socket, matched to their answers by ``request_id``.

    ``app``: the Stasis app (the probe reads ``applications/{app}``);
    ``timeout_s``: how long one request waits for its answer, in seconds.
    The event stream calls :meth:`attach` with each new socket, hands every
    ``RESTResponse`` to :meth:`resolve` and calls :meth:`detach` when the
    socket closes. ``ready`` tells whether requests go over the socket now.
    """

    def __init__(self, app: str, timeout_s: float = 10.0):
        self.app, self.timeout_s = app, timeout_s
        self.ready = False
        self._ws = None
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future] = {}
        self._probe: asyncio.Task | None = None
        self._said_mute = False

    def attach(self, ws) -> None:
        """A new socket is open and read (called after the connect's reconcile):
        probe it in the background; requests go over HTTP until it answers."""
        self._ws, self.ready = ws, False
        self._probe = asyncio.get_running_loop().create_task(self.probe())

    def detach(self) -> None:
        """The socket closed: requests go over HTTP again; those waiting fail with
        :class:`SocketGone` (Asterisk may or may not have run them)."""
        self._ws, self.ready = None, False
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(SocketGone("the ARI event socket closed"))

    async def probe(self) -> bool:
        """``GET applications/{app}`` over the socket; ready when Asterisk answers it
        within :data:`PROBE_TIMEOUT_S`. Logs once when it does not (HTTP is used)."""
        try:
            status, _ = await self.send("GET", f"/applications/{self.app}", None, None,
                                        timeout_s=PROBE_TIMEOUT_S)
        except (SocketGone, asyncio.TimeoutError):
            status = None
        if status == 200:
            self.ready = True
            self._said_mute = False
            log.info("ARI requests go over the event socket", extra={"event": "ari_requests_websocket"})
            return True
        if self._ws is not None and not self._said_mute:
            self._said_mute = True
            log.warning("[ari] requests = \"websocket\": Asterisk did not answer a request on the event "
                        "socket (%s); requests go over HTTP. REST over WebSocket needs Asterisk 22.4 or "
                        "later", "no answer" if status is None else f"status {status}",
                        extra={"event": "ari_requests_http"})
        return False

    async def send(self, method: str, path: str, params: list[tuple[str, str]] | None,
                   body: bytes | None, timeout_s: float | None = None) -> tuple[int, bytes]:
        """One request: ``path`` as the client writes it (``/channels/x``); ``params``: the
        query's (name, text) pairs; ``body``: JSON bytes. Returns (status, JSON body bytes,
        ``b""`` when none). Raises :class:`SocketGone`, ``asyncio.TimeoutError``."""
        ws = self._ws
        if ws is None:
            raise SocketGone("no ARI event socket", sent=False)
        request_id = str(next(self._ids))
        msg: dict[str, Any] = {"type": "RESTRequest", "request_id": request_id, "method": method,
                               "uri": path.lstrip("/")}
        if params:
            msg["query_strings"] = [{"name": k, "value": v} for k, v in params]
        if body is not None:
            msg["content_type"] = "application/json"
            msg["message_body"] = body.decode("utf-8")
        fut = asyncio.get_running_loop().create_future()
        self._pending[request_id] = fut
        try:
            try:
                # A text frame: Asterisk ignores binary ones.
                await ws.send(orjson.dumps(msg).decode("utf-8"))
            except (OSError, ConnectionClosed) as exc:
                raise SocketGone(f"the ARI event socket is closing ({type(exc).__name__})",
                                 sent=False) from exc
            return await asyncio.wait_for(fut, timeout_s or self.timeout_s)
        finally:
            self._pending.pop(request_id, None)

    def resolve(self, event: dict) -> None:
        """A ``RESTResponse`` event: complete the request it answers (an answer no request
        waits for any more, after its timeout, is dropped)."""
        fut = self._pending.get(str(event.get("request_id") or ""))
        if fut is None or fut.done():
            return
        try:
            status = int(event.get("status_code") or 0)
        except (TypeError, ValueError):
            status = 0
        body = event.get("message_body")
        fut.set_result((status, body.encode("utf-8") if isinstance(body, str) else b""))
