"""The ARI floor: the least any ARI application must ask of Asterisk for a REST call.

A third subject of the benchmark, between bare Asterisk (the dialplan does
everything) and the service: a minimal Stasis application, inside the
benchmark's own process, that makes exactly the ARI requests the service
makes for a REST click-to-dial call (SPEC §3) — and nothing else: no
journal, no logging, no HTTP API, no checks, no timers.

1. ``POST /channels`` the agent leg into the app (the same variables);
2. agent's ``StasisStart`` (answered) → ``POST /channels`` the callee leg
   through the trunk with the CLID, ``POST /bridges/{id}`` and
   ``POST /channels/{agent}/ring``, at once;
3. callee's ``StasisStart`` → ``POST /bridges/{id}/addChannel`` (both legs,
   once the bridge's creation has been answered) and
   ``DELETE /channels/{agent}/ring``, at once;
4. a leg's ``ChannelDestroyed`` → ``DELETE /channels/{other}``, then
   ``DELETE /bridges/{id}``.

Its capacity is what Asterisk itself allows a Stasis application on this
machine: the gap between it and bare Asterisk is Asterisk's own cost of
ARI (REST requests, events, Stasis), the gap between it and the service is
the service's. Bridges are named ``c2d-<call id>``, so the observer ties them
to calls as it does the service's.

Variant ``local`` (``--set floor_variants='["local"]'``): the same requests,
but each leg is originated the way the service originates it since decision
0014 — ``Local/<callee>@c2d-agent-leg/n`` and ``Local/<callee>@c2d-trunk-leg/n``
with the variables ``calls/legs.py`` builds — so the gap between it and the
floor is what the Local channels and their dialplan cost Asterisk, and the
gap between it and the service is the service's own requests. The variant
``native`` (Asterisk bridging in the dialplan) is ``bench/native.py``.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections import Counter

from bench.httpclient import HttpError, HttpPool
from bench.observer import app_events, close_app, open_app
from platforma_c2d.calls import legs
from platforma_c2d.calls.connected_line import bridge_type, keep_variables
from platforma_c2d.calls.model import Call, Leg, Origin
from platforma_c2d.config.schema import DialConfig

#: The bench's dialplan has the service's subroutine (asterisk_conf/): the floor
#: bridges and keeps connected lines the way the service does (ADR 0015).
SUB = "c2d-connected-line"

APP = "c2d-bench-floor"

#: The ring timeouts of the service in the bench (``bench.plan.SERVICE_OVERRIDES``).
DIAL = DialConfig(agent_ring_timeout_s=30, callee_ring_timeout_s=45)


def local_legs(call_id: str, agent: str, callee: str, clid: str, app: str) -> tuple[dict, dict]:
    """The ``POST /channels`` query and body of both legs of one call of the ``local``
    variant: what the service sends for a REST call to ``callee`` (``calls/legs.py``,
    decisions 0014 and 0015), into the Stasis app ``app``. Returns (agent, callee), each
    ``{"params": …, "json_body": …}``. Pure."""
    call = Call(id=call_id, origin=Origin.REST, agent=agent, callee=callee, outbound_id=clid, clid=clid,
                call_ref="bench-" + callee)
    call.agent_leg = Leg("agent", legs.agent_channel_id(call_id))
    out = []
    for orig in (legs.agent_originate(call, DIAL, SUB), legs.callee_originate(call, DIAL, SUB)):
        params = {"endpoint": orig.endpoint, "app": app, "appArgs": orig.app_args,
                  "channelId": orig.channel_id, "timeout": orig.timeout_s}
        if orig.originator:
            params["originator"] = orig.originator
        if orig.other_channel_id:
            params["otherChannelId"] = orig.other_channel_id
        out.append({"params": params, "json_body": {"variables": orig.variables}})
    return out[0], out[1]


class AriFloor:
    """The minimal Stasis application (see the module docstring).

    ``ari``: an :class:`HttpPool` to ARI; ``host``/``port``/``auth``: where
    its event WebSocket connects; ``agent``: the agent's extension;
    ``clid``: the CLID presented to callees; ``variant``: ``""`` (PJSIP
    legs, the floor) or ``"local"`` (the service's Local legs). ``place(rec)``
    is the subject interface of ``bench/subjects.py`` (``rec.status`` 200
    when Asterisk took the agent leg; ``rec.call_id`` names the bridge
    ``c2d-<call_id>``).
    """

    ok_status = 200

    def __init__(self, ari: HttpPool, host: str, port: int, auth: tuple[str, str],
                 agent: str, clid: str, variant: str = ""):
        if variant not in ("", "local"):
            raise ValueError(f"no ARI floor variant {variant!r} (\"\" or \"local\")")
        self.ari, self.agent, self.clid, self.variant = ari, agent, clid, variant
        self.name = "ari-floor" + (f"-{variant}" if variant else "")
        # An app of its own: Asterisk sends an app's events to one WebSocket only.
        self.app = APP + (f"-{variant}" if variant else "")
        # The app's own connections (like the service's): its requests never
        # queue behind the load generator's, nor the other way round.
        self.app_http = HttpPool(host, port, auth=auth, max_conns=32)
        self.url = f"ws://{host}:{port}/ari/events?app={self.app}&subscribeAll=false"
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._ids = itertools.count(1)
        self.calls: dict[str, dict] = {}        # call id -> {"callee", "gone", "agent", "callee_leg", "dial"}
        self.legs: dict[str, tuple[str, str]] = {}   # channel id -> (call id, role)
        self.placed = 0
        self.errors = 0
        self.refused: Counter = Counter()       # "METHOD what status" -> requests that failed
        self._ws = None
        self._task: asyncio.Task | None = None
        self._pending: set[asyncio.Task] = set()

    async def start(self) -> None:
        """Connect the app and narrow its events to the two it acts on."""
        self._ws = await open_app(self.url, self._headers, self.app_http, self.app,
                                  ("StasisStart", "ChannelDestroyed"))
        self._task = asyncio.create_task(self._read())

    async def stop(self) -> None:
        """Wait for the requests in flight; close the socket."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await close_app(self._ws, self._task)
        await self.app_http.close()

    async def place(self, rec) -> None:
        """Originate the agent leg of one call to ``rec.callee``."""
        from bench.subjects import _send   # the same request path as the other subjects

        call_id = f"floor{next(self._ids):08d}"
        rec.call_id = call_id
        if self.variant == "local":
            agent_req, callee_req = local_legs(call_id, self.agent, rec.callee, self.clid, self.app)
        else:
            agent_req, callee_req = self._pjsip_legs(call_id, rec.callee)
        call = {"callee": rec.callee, "gone": set(), "agent": agent_req["params"]["channelId"],
                "callee_leg": callee_req["params"]["channelId"], "dial": callee_req}
        self.calls[call_id] = call
        self.legs[call["agent"]] = (call_id, "agent")
        self.legs[call["callee_leg"]] = (call_id, "callee")
        await _send(self.ari, rec, "POST", "/ari/channels", **agent_req)
        self.placed += 1

    def _pjsip_legs(self, call_id: str, callee: str) -> tuple[dict, dict]:
        """Both legs straight to their PJSIP endpoints (the floor itself)."""
        agent = {"params": {"endpoint": f"PJSIP/{self.agent}", "app": self.app, "appArgs": f"agent,{call_id}",
                            "channelId": f"{call_id}-agent", "timeout": 35},
                 "json_body": {"variables": {
                     "CONNECTEDLINE(num)": callee, "CONNECTEDLINE(name)": callee,
                     **keep_variables(SUB, callee, callee),
                     "CDR(call_ref)": "bench-" + callee, "CDR(c2d_call_id)": call_id,
                     "CDR(c2d_leg)": "agent", "CDR(c2d_agent)": self.agent, "CDR(c2d_clid)": self.clid}}}
        callee_req = {"params": {"endpoint": f"PJSIP/{callee}@trunk", "app": self.app, "appArgs": f"callee,{call_id}",
                                 "channelId": f"{call_id}-callee", "timeout": 50,
                                 "originator": f"{call_id}-agent"},
                      "json_body": {"variables": {
                          "CDR(call_ref)": "bench-" + callee, "CDR(c2d_call_id)": call_id,
                          "CDR(c2d_leg)": "callee", "CDR(c2d_agent)": self.agent,
                          "CDR(c2d_clid)": self.clid, "CALLERID(num)": self.clid,
                          "CALLERID(name)": "", "CONNECTEDLINE(num)": self.clid,
                          "CONNECTEDLINE(name)": "", **keep_variables(SUB, self.clid, "")}}}
        return agent, callee_req

    # --- the application ------------------------------------------------
    async def _req(self, method: str, path: str, **kw) -> None:
        try:   # bounded, like the service's requests: an overloaded Asterisk fails the step
            status, _, _ = await asyncio.wait_for(self.app_http.request(method, path, **kw), timeout=10)
        except (HttpError, OSError, asyncio.TimeoutError) as exc:
            status = type(exc).__name__
        if not isinstance(status, int) or status >= 300:
            self.errors += 1
            what = path.rsplit("/", 1)[-1] if path.endswith(("/addChannel", "/ring")) else path.split("/")[2]
            self.refused[f"{method} {what} {status}"] += 1

    def _spawn(self, *coros) -> None:
        for coro in coros:
            task = asyncio.ensure_future(coro)
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _read(self) -> None:
        async for ev in app_events(self._ws):
            chan_id = (ev.get("channel") or {}).get("id", "")
            call_id, role = self.legs.get(chan_id, ("", ""))
            call = self.calls.get(call_id)
            if call is None:
                continue
            if ev.get("type") == "StasisStart":
                if role == "agent":
                    call["bridge"] = asyncio.ensure_future(self._req(
                        "POST", f"/ari/bridges/c2d-{call_id}",
                        params={"type": bridge_type(SUB), "name": f"c2d-{call_id}"}))
                    self._spawn(self._req("POST", "/ari/channels", **call["dial"]), call["bridge"],
                                self._req("POST", f"/ari/channels/{chan_id}/ring"))
                elif role == "callee":
                    self._spawn(self._connect(call_id, call, chan_id),
                                self._req("DELETE", f"/ari/channels/{call['agent']}/ring"))
            elif ev.get("type") == "ChannelDestroyed":
                self.legs.pop(chan_id, None)
                if call["gone"]:
                    call["gone"].add(role)
                    self.calls.pop(call_id, None)
                    continue
                call["gone"].add(role)
                other = call["callee_leg"] if role == "agent" else call["agent"]
                self._spawn(self._teardown(call_id, other))

    async def _connect(self, call_id: str, call: dict, callee_chan: str) -> None:
        # The bridge is created when the agent answers; a callee who answers at
        # once could otherwise get here first (addChannel 404, bridge not found).
        if "bridge" in call:
            await call["bridge"]
        await self._req("POST", f"/ari/bridges/c2d-{call_id}/addChannel",
                        params={"channel": f"{call['agent']},{callee_chan}"})

    async def _teardown(self, call_id: str, other: str) -> None:
        await self._req("DELETE", f"/ari/channels/{other}")
        await self._req("DELETE", f"/ari/bridges/c2d-{call_id}")
