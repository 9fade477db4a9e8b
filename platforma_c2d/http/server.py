"""The HTTP server of ``serve``: waitress, hardened against slow clients
(docs/security.md; decision in docs/decisions/, "Slow clients").

waitress reads every request whole on its one I/O thread before a worker
thread sees it, so a slow client costs a socket, never a worker. What it
lacks is a deadline: a client that sends one header byte every few seconds
never counts as idle and holds its connection for ever, and with
waitress' default of 100 connections, 120 such clients took the API down.
Here:

* ``[http] max_connections`` (waitress ``connection_limit``), well above
  what a slow-client attack from a few hosts can open;
* ``[http] request_timeout_s``: a request must arrive whole (headers and
  body) within that many seconds of its first byte, and a new connection
  must bring its first request within that time; otherwise the connection
  is closed (checked every second);
* ``[http] idle_timeout_s`` (waitress ``channel_timeout``): a keep-alive
  connection with nothing to do is closed after that long;
* a body over the limit is refused by waitress before it is read (from its
  ``Content-Length``, or as a chunked body grows past it) with the API's own
  JSON error, 413 ``request-too-large`` (SPEC §2), not waitress' text, and
  counted like the application's own refusals
  (``c2d_requests_rejected_total{error="request-too-large"}``);
* a connection stays readable while its request is served (waitress
  ``channel_request_lookahead``), so that a client that goes away is seen
  at once (``environ["waitress.client_disconnected"]``): an event stream
  whose client left gives its slot back within a second or two, not at its
  second or third failed keep-alive (~45 s).
"""

from __future__ import annotations

import json
import logging
import time
import types

import waitress
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask
from waitress.utilities import RequestEntityTooLarge

from platforma_c2d import contract
from platforma_c2d.config import HttpConfig

log = logging.getLogger("platforma_c2d.http")

#: Seconds between two checks of the request deadline.
CHECK_INTERVAL_S = 1


def too_large_body() -> bytes:
    """The JSON body of 413 ``request-too-large`` (SPEC §2 error shape), as the
    application's own guard words it."""
    return json.dumps({"error": "request-too-large", "message": contract.ERRORS["request-too-large"].meaning,
                       "details": {}}).encode()


class _JsonErrorTask(ErrorTask):
    """waitress' answer to a request it refuses itself: a body over the limit
    becomes the API's JSON 413 (the body is never read); other refusals
    (malformed requests) keep waitress' text."""

    def execute(self) -> None:
        """Write the error response (waitress); the connection closes after it."""
        if not isinstance(self.request.error, RequestEntityTooLarge):
            super().execute()
            return
        on_rejected = getattr(self.channel.server, "on_rejected", None)
        if on_rejected is not None:
            on_rejected("request-too-large")
        body = too_large_body()
        self.status = f"413 {RequestEntityTooLarge.reason}"
        self.response_headers.extend([("Content-Type", "application/json"),
                                      (contract.API_VERSION_HEADER, contract.API_VERSION)])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _DeadlineChannel(HTTPChannel):
    """A waitress channel that remembers since when its current request is
    incomplete (``pending_since``, ``time.time()`` seconds; ``None`` while
    it has no incomplete request), and answers a body over the limit with
    JSON (:class:`_JsonErrorTask`)."""

    error_task_class = _JsonErrorTask

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pending_since: float | None = self.creation_time

    def received(self, data) -> bool:
        """Read ``data`` (waitress); start or stop the request's clock."""
        if data and self.request is None and self.pending_since is None:
            self.pending_since = time.time()
        done = super().received(data)
        if self.request is None:          # every request received so far is whole
            self.pending_since = None
        return done


def _maintenance(server, now: float) -> None:
    """waitress' idle check, plus the request deadline (``server.request_timeout_s``)."""
    type(server).maintenance(server, now)
    cutoff = now - server.request_timeout_s
    for channel in list(server.active_channels.values()):
        since = getattr(channel, "pending_since", None)
        if since is not None and since < cutoff and not channel.requests and not channel.will_close:
            channel.will_close = True
            server.slow_clients_closed += 1
            log.warning("HTTP client %s closed: no whole request within %s s",
                        channel.addr[0] if channel.addr else "?", server.request_timeout_s)


#: Requests a connection may have read ahead while one is served: one, so
#: that the I/O thread reads on and sees the client's close (waitress' default
#: 0 stops reading, and a gone client is only noticed when a write fails).
REQUEST_LOOKAHEAD = 1


def build_http_server(app, cfg: HttpConfig, max_body_bytes: int, on_rejected=None):
    """A waitress server for ``app`` on ``cfg.listen`` with the slow-client
    defences of this module (not yet running: call ``run()``).

    ``cfg``: ``[http]`` (listen, threads, max_connections,
    request_timeout_s, idle_timeout_s); ``max_body_bytes``: a larger body is
    refused before it is read; ``on_rejected``: called with the error id
    (``"request-too-large"``) of each request the server refuses itself, on
    the thread that answers it (the ``c2d_requests_rejected_total`` counter). Raises
    ``OSError`` when the address cannot be bound. ``server.slow_clients_closed`` counts the connections closed
    for missing the deadline.
    """
    server = waitress.create_server(
        app, host=cfg.host, port=cfg.port, threads=cfg.threads, ident="platforma-c2d",
        max_request_body_size=max_body_bytes, connection_limit=cfg.max_connections,
        channel_timeout=cfg.idle_timeout_s, cleanup_interval=CHECK_INTERVAL_S,
        channel_request_lookahead=REQUEST_LOOKAHEAD)
    server.on_rejected = on_rejected
    server.request_timeout_s = cfg.request_timeout_s
    server.slow_clients_closed = 0
    # waitress takes its channel class and its periodic check from the
    # server object: both are replaced on this one server, nothing global.
    server.channel_class = _DeadlineChannel
    server.maintenance = types.MethodType(_maintenance, server)
    return server
