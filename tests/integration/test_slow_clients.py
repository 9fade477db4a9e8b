"""A slow-client attack (slowloris) on the HTTP API, against the real service.

120 connections, without a token, each sending its request one header byte
at a time (a byte a second here; the audit used one every 20 s, which only
waits longer), reconnecting when the server closes them. Meanwhile
``/healthz`` and a ``POST /click2dial/calls`` must still answer in time, and
the server must close the slow connections at ``[http] request_timeout_s``
(docs/security.md).
"""

from __future__ import annotations

import socket
import threading
import time

import httpx

from testbed.sipp import uas_scenario

ATTACKERS = 120
AGENT_PORT = 5071
BODY = {"agent": "1001", "callee": "0215550100", "outbound_id": "0215550199", "call_ref": "slow-1"}


class SlowLoris(threading.Thread):
    """``count`` connections to ``address``, each trickling a request that
    never ends; a connection the server closes is opened again."""

    def __init__(self, address: tuple[str, int], count: int):
        super().__init__(daemon=True)
        self.address, self.count = address, count
        self.stop = threading.Event()
        self.closed_by_server = 0
        self.opened = 0

    def _open(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=5)
        sock.sendall(b"POST /click2dial/calls HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        sock.setblocking(False)
        self.opened += 1
        return sock

    def run(self) -> None:
        socks = [self._open() for _ in range(self.count)]
        while not self.stop.wait(1.0):
            for i, sock in enumerate(socks):
                try:
                    if sock.recv(4096) == b"":
                        raise ConnectionResetError
                except BlockingIOError:
                    pass
                except OSError:
                    self.closed_by_server += 1
                    sock.close()
                    socks[i] = self._open()
                    continue
                try:
                    sock.send(b"a")
                except OSError:
                    pass
        for sock in socks:
            sock.close()


def test_a_slow_client_attack_leaves_healthz_and_post_answering(asterisk, make_service, sipp):
    svc = make_service({"http": {"request_timeout_s": 3.0}})
    sipp("agent", AGENT_PORT, uas_scenario(answer=False))
    host, port = svc.url.removeprefix("http://").split(":")
    loris = SlowLoris((host, int(port)), ATTACKERS)
    loris.start()
    try:
        time.sleep(1.5)                                # every slow connection is open
        # A new connection each time, each answered within its 2 s timeout (httpx raises
        # otherwise), though every slow connection stays open up to the 3 s deadline.
        deadline = time.monotonic() + 7
        while time.monotonic() < deadline:
            r = httpx.get(svc.url + "/healthz", timeout=2.0)
            assert r.status_code == 200, r.text
            time.sleep(0.5)
        r = httpx.post(svc.url + "/click2dial/calls", json=BODY, timeout=2.0)
        assert r.status_code == 201, r.text
        assert svc.http.delete(f"/click2dial/calls/{r.json()['id']}", timeout=5).status_code == 200
    finally:
        loris.stop.set()
        loris.join(timeout=10)
    # The server closed the slow connections at the deadline (3 s), so each
    # was opened again at least once in the 8.5 s of the attack.
    assert loris.closed_by_server >= ATTACKERS, (loris.closed_by_server, loris.opened)
    assert "no whole request within 3.0 s" in svc.log_path.read_text()
