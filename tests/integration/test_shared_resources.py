"""Shared resources (field reports C35, C36), against the real Asterisk: Asterisk's HTTP
server serves ARI, the ARI events and the browsers' SIP WebSockets from one session
limit; a storm of browser sockets that never say goodbye must not lock the service out
of ARI, and the descriptors they took come back.
"""

from __future__ import annotations

import base64
import os
import socket
import time

from testbed.sipp import uas_scenario

AGENT_PORT, TRUNK_PORT = 5071, 5070
BROWSERS = 150


def _open_ws() -> socket.socket | None:
    """A browser's SIP WebSocket to /ws, upgraded, then left silent (a dead tab);
    None when Asterisk refused it (its HTTP session limit reached)."""
    s = socket.create_connection(("127.0.0.1", 8088), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8088\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Protocol: sip\r\nOrigin: http://127.0.0.1\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1024)
        if not chunk:
            break
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        s.close()
        return None
    return s


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_storm_of_dead_browser_sockets_leaves_ari_working_and_descriptors_come_back(
        asterisk, make_service, sipp):
    sipp("agent", AGENT_PORT, uas_scenario())
    sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=100, talk_ms=500))
    service = make_service({"limits": {"max_active_calls_per_agent": 20}})
    ast_pid = asterisk.proc.pid
    before = _fds(ast_pid)
    dead = [s for s in (_open_ws() for _ in range(BROWSERS)) if s is not None]
    try:
        # Then a burst of calls: every ARI request of the service still gets through.
        ids = []
        for i in range(10):
            r = service.post_call({"agent": "1001", "callee": f"02155502{i:02d}",
                                   "outbound_id": "0215550199", "call_ref": f"storm-{i}"})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            calls = [service.get_call(i) for i in ids]
            if all(c["state"] == "ended" for c in calls):
                break
            time.sleep(0.2)
        assert [c["reason"] for c in calls] == ["completed"] * 10, calls
        assert service.http.get("/healthz").status_code == 200
        # The sample http.conf has room for them all, besides the service's own.
        assert len(dead) == BROWSERS
    finally:
        for s in dead:          # dropped without a close frame
            s.close()
    deadline = time.monotonic() + 15
    while _fds(ast_pid) > before + 5 and time.monotonic() < deadline:
        time.sleep(0.25)
    assert _fds(ast_pid) <= before + 5, (before, _fds(ast_pid))
