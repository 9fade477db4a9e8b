"""A simulated Asterisk for the sandbox: the ARI REST routes the service uses
and the events WebSocket, on aiohttp, with phones that ring, answer, refuse
and hang up as real ones do.

It is not a mock of the service: the real engine, journal and API run
against it exactly as against Asterisk (same ARI client, same event
stream). Only the PBX is pretend, and it says so (``/ari/asterisk/info``
reports the system ``sandbox``).

How a leg behaves is chosen by the number it dials (:func:`behaviour_of`);
docs/api.md lists the numbers. Times are seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

from aiohttp import WSMsgType, web

log = logging.getLogger("platforma_c2d.sandbox")

# Q.850 causes and SIP codes the simulated phones answer with.
NORMAL, BUSY, NO_ANSWER, UNALLOCATED, CONGESTION, UNAVAILABLE = 16, 17, 19, 1, 34, 20


@dataclass(frozen=True)
class Behaviour:
    """What a simulated phone does: ring for ``ring_s``, then answer (and hang
    up itself after ``talk_s``, None: never) — or, when ``refuse_cause`` is
    set, refuse with that Q.850 cause and SIP code; ``answer`` False: ring
    until hung up; ``rings`` False: never rings (unreachable)."""

    ring_s: float = 1.0
    answer: bool = True
    talk_s: float | None = None
    refuse_cause: int | None = None
    sip_code: int | None = None
    rings: bool = True


def behaviour_of(endpoint: str) -> Behaviour:
    """The behaviour of the phone an originate dials (``PJSIP/1001``,
    ``PJSIP/0215550100@trunk``): by the end of its number.

    Agents (extensions): answer after 1 s; ``…99`` never answers; ``…86``
    is busy; ``…09`` is not registered (unreachable). Callees: ring 2 s,
    answer, hang up after 30 s; ``…486`` busy; ``…480`` rings, never
    answers; ``…404`` unallocated; ``…503`` congested (the carrier's 503);
    ``…200`` answers and hangs up after 3 s.
    """
    number = endpoint.split("/", 1)[-1].split("@", 1)[0]
    if len(number) <= 4:                       # an agent's extension
        if number.endswith("99"):
            return Behaviour(answer=False)
        if number.endswith("86"):
            return Behaviour(ring_s=0.5, refuse_cause=BUSY, sip_code=486)
        if number.endswith("09"):
            return Behaviour(rings=False, ring_s=0.2, refuse_cause=UNAVAILABLE, sip_code=404)
        return Behaviour(ring_s=1.0)
    if number.endswith("486"):
        return Behaviour(ring_s=1.0, refuse_cause=BUSY, sip_code=486)
    if number.endswith("480"):
        return Behaviour(answer=False)
    if number.endswith("404"):
        return Behaviour(rings=False, ring_s=0.3, refuse_cause=UNALLOCATED, sip_code=404)
    if number.endswith("503"):
        return Behaviour(rings=False, ring_s=0.3, refuse_cause=CONGESTION, sip_code=503)
    if number.endswith("200"):
        return Behaviour(ring_s=2.0, talk_s=3.0)
    return Behaviour(ring_s=2.0, talk_s=30.0)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


@dataclass
class Channel:
    """One simulated channel."""

    id: str
    name: str
    number: str
    state: str = "Down"
    in_app: bool = False
    app_args: str = ""
    variables: dict = field(default_factory=dict)
    task: asyncio.Task | None = None

    def json(self) -> dict:
        """The ARI channel object."""
        return {"id": self.id, "name": self.name, "state": self.state, "protocol_id": "",
                "caller": {"name": "", "number": self.variables.get("CALLERID(num)", "")},
                "connected": {"name": "", "number": ""}, "accountcode": "",
                "dialplan": {"context": "sandbox", "exten": self.number, "priority": 1, "app_name": "",
                             "app_data": ""},
                "creationtime": _now(), "language": "en"}


#: The simulated dialplan's global variables (GET /ari/asterisk/variable).
GLOBALS = {"C2D_CONNECTED_LINE_SUB": "c2d-connected-line"}


class SimulatedPbx:
    """The fake Asterisk: ``app()`` is its aiohttp application (REST under
    ``/ari``, events at ``/ari/events``). Runs on one event loop."""

    def __init__(self, app_name: str):
        self.app_name = app_name
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, dict] = {}
        self.sockets: list[web.WebSocketResponse] = []
        self._seq = itertools.count(1)

    # --- events ----------------------------------------------------------
    async def emit(self, kind: str, channel: Channel | None = None, **extra) -> None:
        """Send one event to every connected app socket."""
        event = {"type": kind, "timestamp": _now(), "application": self.app_name, **extra}
        if channel is not None:
            event["channel"] = channel.json()
        text = json.dumps(event)
        for ws in list(self.sockets):
            try:
                await ws.send_str(text)
            except ConnectionError:
                pass

    async def _set_state(self, chan: Channel, state: str) -> None:
        chan.state = state
        await self.emit("ChannelStateChange", chan)

    async def _destroy(self, chan: Channel, cause: int, sip_code: int | None = None) -> None:
        if self.channels.pop(chan.id, None) is None:
            return
        if chan.task is not None and chan.task is not asyncio.current_task():
            chan.task.cancel()
        for bridge in self.bridges.values():
            if chan.id in bridge["channels"]:
                bridge["channels"].remove(chan.id)
        extra = {"cause": cause, "cause_txt": ""}
        if sip_code:
            extra["tech_cause"] = sip_code
        await self.emit("ChannelHangupRequest", chan, **extra)
        if chan.in_app:
            await self.emit("StasisEnd", chan)
        await self.emit("ChannelDestroyed", chan, **extra)

    async def _play(self, chan: Channel, how: Behaviour) -> None:
        """The phone's life: ring, then answer or refuse, then maybe hang up."""
        try:
            await asyncio.sleep(0.05)
            if how.rings:
                await self._set_state(chan, "Ringing")
            await asyncio.sleep(how.ring_s)
            if how.refuse_cause is not None:
                await self._destroy(chan, how.refuse_cause, how.sip_code)
                return
            if not how.answer:
                return                      # rings until the caller gives up
            chan.state, chan.in_app = "Up", True
            await self.emit("StasisStart", chan, args=chan.app_args.split(",") if chan.app_args else [])
            if how.talk_s is not None:
                await asyncio.sleep(how.talk_s)
                await self._destroy(chan, NORMAL)
        except asyncio.CancelledError:
            pass

    # --- REST ------------------------------------------------------------
    def _chan(self, request: web.Request) -> Channel:
        chan = self.channels.get(request.match_info["id"])
        if chan is None:
            raise web.HTTPNotFound(text=json.dumps({"message": "Channel not found"}),
                                   content_type="application/json")
        return chan

    async def originate(self, request: web.Request) -> web.Response:
        q = request.query
        body = await request.json() if request.can_read_body else {}
        endpoint = q.get("endpoint", "")
        number = endpoint.split("/", 1)[-1].split("@", 1)[0]
        chan = Channel(id=q.get("channelId") or f"sandbox-{next(self._seq)}",
                       name=f"PJSIP/{'trunk' if '@' in endpoint else number}-{next(self._seq):08x}",
                       number=number, app_args=q.get("appArgs", ""), variables=dict(body.get("variables") or {}))
        if chan.id in self.channels:
            return web.json_response({"message": "channel id in use"}, status=409)
        self.channels[chan.id] = chan
        chan.task = asyncio.get_running_loop().create_task(self._play(chan, behaviour_of(endpoint)))
        return web.json_response(chan.json())

    async def hangup(self, request: web.Request) -> web.Response:
        chan = self._chan(request)
        cause = int(request.query.get("reason_code") or NORMAL)
        asyncio.get_running_loop().create_task(self._destroy(chan, cause))
        return web.Response(status=204)

    async def channel_op(self, request: web.Request) -> web.Response:
        chan = self._chan(request)
        op = request.match_info["op"]
        if op == "answer" and chan.state != "Up":
            chan.state = "Up"
        if op == "play":
            return web.json_response({"id": request.query.get("playbackId", ""), "state": "playing"}, status=201)
        if op == "variable":
            if request.method == "GET":
                name = request.query.get("variable", "")
                if name not in chan.variables:
                    return web.json_response({"message": "Provided variable was not found"}, status=404)
                return web.json_response({"value": chan.variables[name]})
            chan.variables[request.query.get("variable", "")] = request.query.get("value", "")
        return web.Response(status=204)

    async def get_channel(self, request: web.Request) -> web.Response:
        return web.json_response(self._chan(request).json())

    async def list_channels(self, _request: web.Request) -> web.Response:
        return web.json_response([c.json() for c in self.channels.values()])

    async def bridge(self, request: web.Request) -> web.Response:
        bridge_id = request.match_info["id"]
        if request.method == "POST":
            self.bridges[bridge_id] = {"id": bridge_id, "technology": "simple_bridge", "bridge_type": "mixing",
                                       "channels": [], "name": request.query.get("name", "")}
            return web.json_response(self.bridges[bridge_id])
        if request.method == "DELETE":
            if self.bridges.pop(bridge_id, None) is None:
                raise web.HTTPNotFound(text=json.dumps({"message": "Bridge not found"}),
                                       content_type="application/json")
            return web.Response(status=204)
        if bridge_id not in self.bridges:
            raise web.HTTPNotFound(text=json.dumps({"message": "Bridge not found"}), content_type="application/json")
        return web.json_response(self.bridges[bridge_id])

    async def add_channel(self, request: web.Request) -> web.Response:
        bridge = self.bridges.get(request.match_info["id"])
        if bridge is None:
            raise web.HTTPNotFound(text=json.dumps({"message": "Bridge not found"}), content_type="application/json")
        for chan_id in request.query.get("channel", "").split(","):
            if chan_id not in self.channels:
                return web.json_response({"message": "Channel not found"}, status=422)
            bridge["channels"].append(chan_id)
        return web.Response(status=204)

    async def list_bridges(self, _request: web.Request) -> web.Response:
        return web.json_response(list(self.bridges.values()))

    async def ok(self, _request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def info(self, _request: web.Request) -> web.Response:
        return web.json_response({"system": {"version": "sandbox", "entity_id": "sandbox"}})

    async def global_variable(self, request: web.Request) -> web.Response:
        """``GET /ari/asterisk/variable``: the simulated dialplan's globals, as a PBX
        that merged our connected-line subroutine has them (its calls are
        bridged two-party, docs/decisions/0015); any other name is empty."""
        return web.json_response({"value": GLOBALS.get(request.query.get("variable", ""), "")})

    async def endpoint(self, request: web.Request) -> web.Response:
        return web.json_response({"technology": request.match_info["tech"], "resource": request.match_info["res"],
                                  "state": "online", "channel_ids": []})

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        self.sockets.append(ws)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.sockets.remove(ws)
        return ws

    def app(self) -> web.Application:
        """The aiohttp application of this PBX."""
        app = web.Application()
        r = app.router
        r.add_get("/ari/events", self.events)
        r.add_get("/ari/asterisk/info", self.info)
        r.add_get("/ari/asterisk/variable", self.global_variable)
        r.add_get("/ari/endpoints/{tech}/{res}", self.endpoint)
        r.add_put("/ari/applications/{app}/eventFilter", self.ok)
        r.add_post("/ari/channels", self.originate)
        r.add_get("/ari/channels", self.list_channels)
        r.add_get("/ari/channels/{id}", self.get_channel)
        r.add_delete("/ari/channels/{id}", self.hangup)
        for method in ("POST", "DELETE", "GET"):
            r.add_route(method, "/ari/channels/{id}/{op}", self.channel_op)
        r.add_delete("/ari/playbacks/{id}", self.ok)
        r.add_get("/ari/bridges", self.list_bridges)
        for method in ("POST", "DELETE", "GET"):
            r.add_route(method, "/ari/bridges/{id}", self.bridge)
        r.add_post("/ari/bridges/{id}/addChannel", self.add_channel)
        return app
