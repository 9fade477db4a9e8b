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
3. callee's ``StasisStart`` → ``POST /bridges/{id}/addChannel`` (both legs)
   and ``DELETE /channels/{agent}/ring``, at once;
4. a leg's ``ChannelDestroyed`` → ``DELETE /channels/{other}``, then
   ``DELETE /bridges/{id}``.

Its capacity is what Asterisk itself allows a Stasis application on this
machine: the gap between it and bare Asterisk is Asterisk's own cost of
ARI (REST requests, events, Stasis), the gap between it and the service is
the service's. Bridges are named ``c2d-<call id>``, so the observer ties them
to calls as it does the service's.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json

from bench.httpclient import HttpError, HttpPool
from bench.observer import close_app, open_app
from platforma_c2d.calls.connected_line import bridge_type, keep_variables

#: The bench's dialplan has the service's subroutine (asterisk_conf/): the floor
#: bridges and keeps connected lines the way the service does (ADR 0015).
SUB = "c2d-connected-line"

APP = "c2d-bench-floor"


class AriFloor:
    """The minimal Stasis application (see the module docstring).

    ``ari``: an :class:`HttpPool` to ARI; ``host``/``port``/``auth``: where
    its event WebSocket connects; ``agent``: the agent's extension;
    ``clid``: the CLID presented to callees. ``place(rec)`` is the subject
    interface of ``bench/subjects.py`` (``rec.status`` 200 when Asterisk took
    the agent leg; ``rec.call_id`` names the bridge ``c2d-<call_id>``).
    """

    name = "ari-floor"
    ok_status = 200

    def __init__(self, ari: HttpPool, host: str, port: int, auth: tuple[str, str],
                 agent: str, clid: str):
        self.ari, self.agent, self.clid = ari, agent, clid
        # The app's own connections (like the service's): its requests never
        # queue behind the load generator's, nor the other way round.
        self.app_http = HttpPool(host, port, auth=auth, max_conns=32)
        self.url = f"ws://{host}:{port}/ari/events?app={APP}&subscribeAll=false"
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._ids = itertools.count(1)
        self.calls: dict[str, dict] = {}        # call id -> {"callee": str, "gone": set}
        self.placed = 0
        self.errors = 0
        self._ws = None
        self._task: asyncio.Task | None = None
        self._pending: set[asyncio.Task] = set()

    async def start(self) -> None:
        """Connect the app and narrow its events to the two it acts on."""
        self._ws = await open_app(self.url, self._headers, self.app_http, APP,
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
        self.calls[call_id] = {"callee": rec.callee, "gone": set()}
        params = {"endpoint": f"PJSIP/{self.agent}", "app": APP, "appArgs": f"agent,{call_id}",
                  "channelId": f"{call_id}-agent", "timeout": 35}
        body = {"variables": {"CONNECTEDLINE(num)": rec.callee, "CONNECTEDLINE(name)": rec.callee,
                              **keep_variables(SUB, rec.callee, rec.callee),
                              "CDR(call_ref)": "bench-" + rec.callee, "CDR(c2d_call_id)": call_id,
                              "CDR(c2d_leg)": "agent", "CDR(c2d_agent)": self.agent,
                              "CDR(c2d_clid)": self.clid}}
        await _send(self.ari, rec, "POST", "/ari/channels", params=params, json_body=body)
        self.placed += 1

    # --- the application ------------------------------------------------
    async def _req(self, method: str, path: str, **kw) -> None:
        try:   # bounded, like the service's requests: an overloaded Asterisk fails the step
            await asyncio.wait_for(self.app_http.request(method, path, **kw), timeout=10)
        except (HttpError, OSError, asyncio.TimeoutError):
            self.errors += 1

    def _spawn(self, *coros) -> None:
        for coro in coros:
            task = asyncio.ensure_future(coro)
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _read(self) -> None:
        async for raw in self._ws:
            try:
                ev = json.loads(raw)
            except ValueError:
                continue
            chan_id = (ev.get("channel") or {}).get("id", "")
            call_id, _, role = chan_id.rpartition("-")
            call = self.calls.get(call_id)
            if call is None:
                continue
            if ev.get("type") == "StasisStart":
                if role == "agent":
                    self._spawn(
                        self._req("POST", "/ari/channels", params={
                            "endpoint": f"PJSIP/{call['callee']}@trunk", "app": APP,
                            "appArgs": f"callee,{call_id}", "channelId": f"{call_id}-callee",
                            "timeout": 50, "originator": chan_id},
                            json_body={"variables": {
                                "CDR(call_ref)": "bench-" + call["callee"], "CDR(c2d_call_id)": call_id,
                                "CDR(c2d_leg)": "callee", "CDR(c2d_agent)": self.agent,
                                "CDR(c2d_clid)": self.clid, "CALLERID(num)": self.clid,
                                "CALLERID(name)": "", "CONNECTEDLINE(num)": self.clid,
                                "CONNECTEDLINE(name)": "", **keep_variables(SUB, self.clid, "")}}),
                        self._req("POST", f"/ari/bridges/c2d-{call_id}",
                                  params={"type": bridge_type(SUB), "name": f"c2d-{call_id}"}),
                        self._req("POST", f"/ari/channels/{chan_id}/ring"))
                elif role == "callee":
                    self._spawn(
                        self._req("POST", f"/ari/bridges/c2d-{call_id}/addChannel",
                                  params={"channel": f"{call_id}-agent,{chan_id}"}),
                        self._req("DELETE", f"/ari/channels/{call_id}-agent/ring"))
            elif ev.get("type") == "ChannelDestroyed":
                if call["gone"]:
                    call["gone"].add(role)
                    self.calls.pop(call_id, None)
                    continue
                call["gone"].add(role)
                other = "callee" if role == "agent" else "agent"
                self._spawn(self._teardown(call_id, other))

    async def _teardown(self, call_id: str, other: str) -> None:
        await self._req("DELETE", f"/ari/channels/{call_id}-{other}")
        await self._req("DELETE", f"/ari/bridges/c2d-{call_id}")
