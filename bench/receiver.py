"""A webhook receiver for the benchmark's events-on runs (``--webhook``).

A threaded ``http.server`` on 127.0.0.1 that answers every ``POST`` with
204 at once and counts the deliveries, so that a run with one
``[[webhooks.endpoints]]`` configured measures what call events cost the
service (SPEC §10, decision 0008), not what a slow receiver costs. It
speaks HTTP/1.1 and keeps its connections, as a receiver behind any
current web server does (an HTTP/1.0 receiver closing each one made the
service open a connection per delivery).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Start with :meth:`start`; ``url`` is where to deliver; ``received``
    counts the POSTs answered (an int); :meth:`stop` closes it."""

    def __init__(self) -> None:
        self.received = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:          # noqa: N802 (http.server's name)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer._lock:
                    outer.received += 1
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/events"
        self._thread = threading.Thread(target=self.server.serve_forever, name="bench-receiver", daemon=True)

    def start(self) -> "Receiver":
        """Serve on a thread of its own; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()
