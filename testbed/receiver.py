"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that records every POST.

``WebhookReceiver(port)``: ``start()`` / ``stop()`` (the port closes: the
receiver is down), ``status`` (the answer, 200 by default), ``hang``
(accept the request and never answer until stopped). ``received`` lists
``(headers, raw body, monotonic time)`` of every request it answered 2xx
to or failed; :meth:`events` decodes the bodies.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookReceiver:
    """Records POSTed webhooks; see the module docstring."""

    def __init__(self, port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}/hooks"
        self.status, self.hang = 200, False
        self.received: list[tuple[dict, bytes, float, int]] = []
        self._server: ThreadingHTTPServer | None = None
        self._release = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> "WebhookReceiver":
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if owner.hang:
                    owner._release.wait(120)
                    return
                status = owner.status
                with owner._lock:
                    owner.received.append(({k.lower(): v for k, v in self.headers.items()}, body,
                                           time.monotonic(), status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args):
                pass

        self._release.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the port (answers nothing more). Idempotent."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def events(self, ok_only: bool = True) -> list[tuple[dict, bytes, dict]]:
        """``(headers, raw body, event)`` of every request recorded (answered 2xx only by default)."""
        with self._lock:
            got = list(self.received)
        return [(h, b, json.loads(b)) for h, b, _t, status in got if not ok_only or 200 <= status < 300]

    def wait(self, predicate, timeout: float = 20.0) -> list[tuple[dict, bytes, dict]]:
        """Wait until ``predicate(events())`` is true; return the events (asserts in time)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.events()
            if predicate(got):
                return got
            assert time.monotonic() < deadline, f"webhooks not received in time: {[e['type'] for *_, e in got]}"
            time.sleep(0.1)
