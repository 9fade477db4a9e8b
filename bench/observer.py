"""A second ARI application that watches bridges (not the service).

It connects to ``/ari/events?app=c2d-bench-observer&subscribeAll=true`` and
narrows its events to ``ChannelEnteredBridge`` / ``ChannelLeftBridge`` with
the application event filter (``PUT /ari/applications/{app}/eventFilter``),
so watching costs Asterisk and the bench little. From the events'
``timestamp`` (Asterisk's clock, milliseconds) it knows when both channels of
a call were in its bridge, how many calls are connected now, and the peak.

A bridge is tied to the benchmark's callee number (unique per call) by the
``dialplan.exten`` of a channel in it (the caller's channel for dialplan and
header calls), or by its id for the service's REST calls (``c2d-<call id>``).

One call can have several bridges: since decision 0014 each leg the service
originates is a Local channel whose dialplan half bridges its own ``Dial``
(``[c2d-agent-leg]``, ``[c2d-trunk-leg]``) besides the call's bridge
``c2d-<call id>``, and every half has the callee number as its extension. A
call is counted connected once, while any bridge of its callee number (or,
for a bridge with no callee on it, of its id) is connected
(:func:`call_key`); the call's own bridge is the ``c2d-`` one when there is
one (:meth:`Observer.bridge_for`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from websockets.asyncio.client import connect

APP = "c2d-bench-observer"
CALLEE = re.compile(r"^0[0-9]{9}$")


async def open_app(url: str, headers: dict, http, app: str, allowed: tuple[str, ...]):
    """Connect an ARI application's event WebSocket at ``url`` and narrow its
    events to the ``allowed`` types (``PUT /ari/applications/{app}/eventFilter``
    through the HttpPool ``http``); returns the socket. Raises RuntimeError
    when Asterisk refuses the filter."""
    ws = await connect(url, additional_headers=headers, max_size=2**24, ping_interval=None)
    status, body, _ = await http.request("PUT", f"/ari/applications/{app}/eventFilter",
                                         json_body={"allowed": [{"type": t} for t in allowed]})
    if status != 200:
        await ws.close()
        raise RuntimeError(f"ARI event filter refused: {status} {body[:200]!r}")
    return ws


async def app_events(ws):
    """The events an application's WebSocket ``ws`` sends, parsed, in order (frames
    that are not JSON are skipped)."""
    async for raw in ws:
        try:
            yield json.loads(raw)
        except ValueError:
            continue


async def close_app(ws, task: asyncio.Task | None) -> None:
    """Close an application's socket and end its reading task."""
    if ws is not None:
        await ws.close()
    if task is not None:
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):  # noqa: BLE001
            pass


def ari_time(ts: str) -> float:
    """Seconds since the epoch of an ARI event ``timestamp`` (``2026-01-31T12:00:00.123+0000``)."""
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


#: The prefix of the ids of the bridges the service and the ARI floor create for calls.
CALL_BRIDGE_PREFIX = "c2d-"


def call_key(bridge_id: str, callee: str | None) -> str:
    """What ties a bridge to one call: the callee number seen on one of its channels
    (unique per call in a run), else the bridge's own id. Pure."""
    return callee or bridge_id


@dataclass
class BridgeSeen:
    """What the observer saw of one bridge."""

    id: str
    entered: dict[str, float] = field(default_factory=dict)   # channel id -> entered at
    callee: str | None = None
    connected_at: float | None = None    # the second channel entered (Asterisk's clock)
    ended: bool = False                  # a channel left it
    key: str | None = None               # the call it belongs to (call_key), once connected


class Observer:
    """Watches every bridge of the Asterisk at ``host:port`` (ARI user ``auth``)."""

    def __init__(self, host: str, port: int, auth: tuple[str, str], http):
        self.url = f"ws://{host}:{port}/ari/events?app={APP}&subscribeAll=true"
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._http = http                 # an HttpPool to ARI
        self.bridges: dict[str, BridgeSeen] = {}
        self.by_callee: dict[str, BridgeSeen] = {}
        self.connected_now = 0            # calls with a connected bridge now
        self.peak = 0
        self._live: dict[str, int] = {}   # call key -> its bridges connected now
        self.events = 0
        self._ws = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Connect and install the event filter (the app exists once connected)."""
        self._ws = await open_app(self.url, self._headers, self._http, APP,
                                  ("ChannelEnteredBridge", "ChannelLeftBridge"))
        self._task = asyncio.create_task(self._read())

    async def stop(self) -> None:
        """Close the socket."""
        await close_app(self._ws, self._task)

    def reset_peak(self) -> None:
        """Start a new peak measurement from the calls connected now."""
        self.peak = self.connected_now

    def forget(self) -> None:
        """Drop what was seen (between phases) to keep memory small."""
        self.bridges = {k: v for k, v in self.bridges.items() if not v.ended}
        self.by_callee = {k: v for k, v in self.by_callee.items() if not v.ended}
        self._live = {k: n for k, n in self._live.items() if n > 0}

    def bridge_for(self, callee: str, call_id: str | None = None) -> BridgeSeen | None:
        """The bridge of the call to ``callee`` (or of the service's call ``call_id``)."""
        if call_id:
            seen = self.bridges.get("c2d-" + call_id)
            if seen is not None:
                return seen
        return self.by_callee.get(callee)

    async def _read(self) -> None:
        async for raw in self._ws:
            self.events += 1
            try:
                ev = json.loads(raw)
                kind = ev.get("type")
                bridge_id = (ev.get("bridge") or {}).get("id")
                channel = ev.get("channel") or {}
                if not bridge_id or not channel.get("id"):
                    continue
                if kind == "ChannelEnteredBridge":
                    self._entered(bridge_id, channel, ari_time(ev["timestamp"]))
                elif kind == "ChannelLeftBridge":
                    self._left(bridge_id)
            except (ValueError, KeyError, TypeError):
                continue

    def _entered(self, bridge_id: str, channel: dict, at: float) -> None:
        seen = self.bridges.get(bridge_id)
        if seen is None:
            seen = self.bridges[bridge_id] = BridgeSeen(bridge_id)
        seen.entered.setdefault(channel["id"], at)
        exten = (channel.get("dialplan") or {}).get("exten") or ""
        if CALLEE.match(exten):
            seen.callee = exten
            known = self.by_callee.get(exten)
            # The call's own bridge wins over a leg's Dial bridge (decision 0014).
            if (known is None or known.ended or not known.id.startswith(CALL_BRIDGE_PREFIX)
                    or bridge_id.startswith(CALL_BRIDGE_PREFIX)):
                self.by_callee[exten] = seen
        if seen.connected_at is None and len(seen.entered) >= 2 and not seen.ended:
            seen.connected_at = max(sorted(seen.entered.values())[:2])
            seen.key = call_key(bridge_id, seen.callee)
            self._live[seen.key] = self._live.get(seen.key, 0) + 1
            if self._live[seen.key] == 1:
                self.connected_now += 1
                self.peak = max(self.peak, self.connected_now)

    def _left(self, bridge_id: str) -> None:
        seen = self.bridges.get(bridge_id)
        if seen is None or seen.ended:
            return
        seen.ended = True
        if seen.key is not None:
            self._live[seen.key] -= 1
            if self._live[seen.key] == 0:
                del self._live[seen.key]
                self.connected_now -= 1
