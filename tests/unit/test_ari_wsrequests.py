"""``[ari] requests = "websocket"``: the client's fallback to HTTP, against a
scripted ARI (an in-process aiohttp server) that answers ``RESTRequest``
messages on its event socket as Asterisk 22.4+ does
(res/ari/ari_websocket_requests.c), or, as an older Asterisk, never does.
The real Asterisk's side is in tests/integration/test_ari_websocket.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import pytest
from aiohttp import WSMsgType, web

from platforma_c2d.ari import wsrequests
from platforma_c2d.ari.client import AriClient, AriError, AriUnavailable
from platforma_c2d.ari.events import EventStream


class ScriptedAsterisk:
    """HTTP requests are recorded in ``http`` (answered 200 ``{}``); the event socket's
    text frames in ``frames``, answered as RESTResponse unless ``mute``
    (``hold``: answered only when the test sets it)."""

    def __init__(self, mute: bool = False):
        self.mute, self.http, self.frames = mute, [], []
        self.hold: asyncio.Event | None = None
        self.sockets: list[web.WebSocketResponse] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self._sock.getsockname()[1]

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            req = json.loads(msg.data)
            self.frames.append(req)
            if self.mute:
                continue
            if self.hold is not None:
                await self.hold.wait()
            status, body = (404, {"message": "Channel not found"}) if "gone" in req["uri"] else (200, {"id": "x"})
            await ws.send_str(json.dumps({
                "type": "RESTResponse", "request_id": req.get("request_id", ""), "status_code": status,
                "reason_phrase": "OK", "uri": req["uri"], "content_type": "application/json",
                "message_body": json.dumps(body)}))
        return ws

    async def rest(self, request: web.Request) -> web.Response:
        self.http.append((request.method, request.path))
        return web.json_response({})

    async def serve(self, test):
        app = web.Application()
        app.router.add_get("/ari/events", self.events)
        app.router.add_route("*", "/ari/{tail:.*}", self.rest)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.SockSite(runner, self._sock)
        await site.start()
        client = AriClient(self.url, "c2d", "pw", "click2dial", timeout_s=2.0, requests="websocket")

        async def nothing(*_):
            return None

        stream = EventStream(self.url, "c2d", "pw", "click2dial", nothing, nothing, nothing,
                             max_backoff_s=0.5, sockets=client.socket)
        task = asyncio.create_task(stream.run())
        try:
            for _ in range(100):
                if stream.connected:
                    break
                await asyncio.sleep(0.02)
            await test(client, stream)
        finally:
            await stream.stop()
            await task
            await client.close()
            await runner.cleanup()


async def _ready(client: AriClient, timeout: float = 3.0) -> bool:
    for _ in range(int(timeout / 0.02)):
        if client.socket.ready:
            return True
        await asyncio.sleep(0.02)
    return False


def test_requests_go_over_the_socket_once_it_answers():
    ast = ScriptedAsterisk()

    async def test(client, stream):
        assert await _ready(client)
        await client.originate(endpoint="Local/0215550100@c2d-agent-leg/n", channel_id="c2d-1-agent",
                               app_args="c2d,agent", variables={"CDR(call_ref)": "a b&c"}, timeout_s=30)
        assert await client.hangup("gone-1") is False           # a 404 answered on the socket
        assert ast.http == []
        probe, originate, hangup = ast.frames
        assert (probe["method"], probe["uri"]) == ("GET", "applications/click2dial")
        assert (originate["type"], originate["method"], originate["uri"]) == ("RESTRequest", "POST", "channels")
        query = {p["name"]: p["value"] for p in originate["query_strings"]}
        assert query["endpoint"] == "Local/0215550100@c2d-agent-leg/n" and query["channelId"] == "c2d-1-agent"
        assert originate["content_type"] == "application/json"
        assert json.loads(originate["message_body"]) == {"variables": {"CDR(call_ref)": "a b&c"}}
        assert (hangup["method"], hangup["uri"]) == ("DELETE", "channels/gone-1")
        with pytest.raises(AriError) as err:
            await client.request("GET", "/channels/gone-2")
        assert (err.value.status, err.value.message) == (404, "Channel not found")

    asyncio.run(ast.serve(test))


def test_an_asterisk_that_never_answers_on_the_socket_gets_http(monkeypatch, caplog):
    monkeypatch.setattr(wsrequests, "PROBE_TIMEOUT_S", 0.3)
    ast = ScriptedAsterisk(mute=True)

    async def test(client, stream):
        await asyncio.sleep(0.6)
        assert not client.socket.ready
        await client.answer("c2d-1-agent")
        assert ast.http == [("POST", "/ari/channels/c2d-1-agent/answer")]
        assert [f["uri"] for f in ast.frames] == ["applications/click2dial"]   # the probe only

    with caplog.at_level(logging.WARNING):
        asyncio.run(ast.serve(test))
    assert any("requests go over HTTP" in r.getMessage() for r in caplog.records)


def test_the_event_filter_lets_the_answers_through():
    ast = ScriptedAsterisk()

    async def test(client, stream):
        assert await _ready(client)
        await client.set_event_filter(["StasisStart"])
        assert json.loads(ast.frames[-1]["message_body"]) == {
            "allowed": [{"type": "StasisStart"}, {"type": "RESTResponse"}]}

    asyncio.run(ast.serve(test))


def test_a_request_waiting_when_the_socket_closes_fails_and_the_next_goes_over_http():
    ast = ScriptedAsterisk()

    async def test(client, stream):
        assert await _ready(client)
        ast.hold = asyncio.Event()
        waiting = asyncio.create_task(client.ring("c2d-1-agent"))
        await asyncio.sleep(0.1)
        await ast.sockets[0].close()
        with pytest.raises(AriUnavailable):
            await waiting
        for _ in range(50):
            if not client.socket.ready:
                break
            await asyncio.sleep(0.02)
        ast.mute = True          # the reconnected socket does not answer: HTTP it is
        await client.ring("c2d-2-agent")
        assert ("POST", "/ari/channels/c2d-2-agent/ring") in ast.http
        ast.hold.set()

    asyncio.run(ast.serve(test))


@pytest.mark.parametrize("version, answers", [
    ("22.10.1", True), ("22.4.0", True), ("22.3.0", False), ("21.9.0", True), ("21.8.2", False),
    ("20.14.0-cert1", True), ("20.13.1", False), ("23.0.0", True), ("18.20.0", False),
    ("GIT-master-1a2b3c", True)])
def test_check_knows_which_asterisk_answers_requests_on_the_socket(version, answers):
    """``check`` WARNs for an Asterisk whose sources have no REST over WebSocket (before 20.14,
    21.9, 22.4); a version it cannot read is left to the service's probe."""
    from platforma_c2d.cli_check import rest_over_websocket

    assert rest_over_websocket(version) is answers


def test_a_request_the_closing_socket_cannot_take_goes_over_http():
    """The socket closed but the stream has not noticed yet: the request, never written,
    goes over HTTP instead of failing."""
    from websockets.exceptions import ConnectionClosedError

    class Closing:
        async def send(self, _text):
            raise ConnectionClosedError(None, None)

    ast = ScriptedAsterisk()

    async def test(client, stream):
        assert await _ready(client)
        client.socket._ws = Closing()
        await client.ring("c2d-1-agent")
        assert ast.http == [("POST", "/ari/channels/c2d-1-agent/ring")]

    asyncio.run(ast.serve(test))
