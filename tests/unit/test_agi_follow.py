"""agi.follow.ChannelFollow: the AGI server's subscription of the service's app to a channel,
sent by the package's ARI client from many session threads (SPEC §6)."""

from __future__ import annotations

import base64
import http.server
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

from platforma_c2d.agi.follow import ChannelFollow
from platforma_c2d.config.schema import AriConfig


class _Ari(http.server.BaseHTTPRequestHandler):
    """Stands for Asterisk's HTTP server: records each request, answers ``status``."""

    seen: list = []
    status = 204

    def do_POST(self):  # noqa: N802 - http.server's name
        self.seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def _serve(status: int):
    handler = type("Ari", (_Ari,), {"seen": [], "status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler


def _config(port: int) -> AriConfig:
    return AriConfig(url=f"http://127.0.0.1:{port}", username="c2d", password="s3cret", app="click2dial")


def test_each_session_thread_subscribes_the_app_to_its_channel():
    server, ari = _serve(204)
    follow = ChannelFollow(_config(server.server_address[1]))
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(follow.subscribe, [f"1700.{i}" for i in range(16)]))
    finally:
        follow.close()
        server.shutdown()
    assert results == [True] * 16
    auth = "Basic " + base64.b64encode(b"c2d:s3cret").decode()
    assert sorted(ari.seen) == sorted(
        (f"/ari/applications/click2dial/subscription?eventSource=channel%3A1700.{i}", auth) for i in range(16))


def test_a_refusal_or_no_asterisk_is_false_and_logged_never_raised(caplog):
    server, _ari = _serve(404)
    follow = ChannelFollow(_config(server.server_address[1]))
    try:
        assert follow.subscribe("1700.1") is False
    finally:
        follow.close()
        server.shutdown()
    with socket.socket() as s:   # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    follow = ChannelFollow(_config(port), timeout_s=1.0)
    try:
        assert follow.subscribe("1700.2") is False
    finally:
        follow.close()
    text = caplog.text
    assert "cannot hand AGI channel 1700.1 to the service (ARI answered 404)" in text
    assert "cannot hand AGI channel 1700.2 to the service (ARI: ClientConnectorError)" in text
