"""Asterisk bridging natively, observed and controlled through ARI (decision 0018's trial).

A subject of the benchmark beside the ARI floor (``bench/floor.py``): the
design issue 20 asks to measure against a call bridged in Stasis. Per call:

1. ``POST /channels`` of the agent leg into the dialplan context
   ``[c2d-bench-native]`` (``bench/plan.py``), extension = the callee, with
   the variables the service sets on an agent leg (what the phone is shown,
   the call's CDR variables) and the CLID in ``C2D_CLID``; when the agent
   answers, the context sets the CLID as the leg's caller and ``Dial()``\\ s
   the callee through the trunk: Asterisk's own two-party bridge, no Stasis;
2. ``POST /applications/{app}/subscription?eventSource=channel:<agent leg>``
   at once: the app, connected with ``subscribeAll=false`` and an event
   filter, then gets the leg's ``Dial`` events (the callee's channel, its
   progress and ``dialstatus``, and the agent leg's own: it answered),
   the ``UserEvent`` of the context after ``Dial()`` (the trunk's SIP code)
   and its ``ChannelDestroyed`` (the cause) — what the service would need
   to journal each state of SPEC §2 (decision 0012 follows AGI calls the
   same way);
3. nothing else: the dialplan connects the callee and hangs the agent up
   when the callee is gone. ``hangup(call_id)`` is the control
   (``DELETE /channels/{id}``, SPEC §2's DELETE); the benchmark never needs it.

``observed`` counts the calls the app saw reach each step, so a run says
whether the events were enough to follow every call. The subscription is
made once the originate has answered: an agent who answers within those
milliseconds has rung and answered unseen (``agent_up`` short of the calls
placed), which the callee's ``Dial`` then tells (``callee_dialled``).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections import Counter

from bench.httpclient import HttpError, HttpPool
from bench.observer import app_events, close_app, open_app
from bench.floor import DIAL
from platforma_c2d.calls import legs
from platforma_c2d.calls.connected_line import shown_to_agent
from platforma_c2d.calls.model import Call, Origin

APP = "c2d-bench-native"
#: The bench-only context the agent leg continues into (``bench.plan.EXTENSIONS_LOCAL``).
CONTEXT = "c2d-bench-native"
#: The events the service would need of a natively bridged call.
EVENTS = ("Dial", "ChannelUserevent", "ChannelDestroyed")
_FAILED = ("BUSY", "NOANSWER", "CONGESTION", "CHANUNAVAIL", "CANCEL")


def native_agent_leg(call_id: str, agent: str, callee: str, clid: str, local: bool = False) -> dict:
    """The ``POST /channels`` (``params``, ``json_body``) of a natively bridged call's
    agent leg: into :data:`CONTEXT` at the callee's extension, the phone shown the
    callee, the call's CDR variables, the CLID for the context. Pure.

    ``local``: the agent leg as the service originates it (decision 0014,
    ``Local/<callee>@c2d-agent-leg/n``, whose ``;2`` rings the phone and
    keeps the agent's CDR row), its ``;1`` running the context: ``;1``'s own
    row is then the trunk leg's (``src`` the CLID, ``dst`` the callee), two
    rows per call as SPEC §5 asks, at the cost of one Local channel."""
    variables = {"C2D_CLID": clid, "CDR(call_ref)": "bench-" + callee, "CDR(c2d_call_id)": call_id,
                 "CDR(c2d_leg)": "agent", "CDR(c2d_agent)": agent, "CDR(c2d_clid)": clid}
    params = {"endpoint": f"PJSIP/{agent}", "context": CONTEXT, "extension": callee,
              "priority": 1, "channelId": f"{call_id}-agent", "timeout": 35}
    if local:
        call = Call(id=call_id, origin=Origin.REST, agent=agent, callee=callee, outbound_id=clid, clid=clid,
                    call_ref="bench-" + callee)
        orig = legs.agent_originate(call, DIAL, "")
        variables.update({k: v for k, v in orig.variables.items() if k != "CDR_PROP(disable)"})
        params.update(endpoint=orig.endpoint, otherChannelId=legs.dial_half_id(params["channelId"]))
    else:
        variables.update(shown_to_agent("", callee))
    return {"params": params, "json_body": {"variables": variables}}


def call_of(ev: dict) -> str | None:
    """The call id of an event of a followed agent leg (channel id ``<call id>-agent``,
    as the event's ``channel``, ``caller`` or ``peer``); None when it names none. Pure."""
    for key in ("channel", "caller", "peer"):
        chan_id = (ev.get(key) or {}).get("id", "")
        if chan_id.endswith("-agent"):
            return chan_id[: -len("-agent")]
    return None


def step_of(ev: dict) -> str | None:
    """What an event of a followed agent leg tells of its call, in the journal's terms.

    A ``Dial`` with no ``caller`` is the agent leg's own originate
    (``agent_ringing``, ``agent_up``, ``agent_failed``); with our leg as
    ``caller`` it is the callee's, dialled by the context (``callee_dialled``,
    ``callee_ringing``, ``callee_answered``, ``callee_failed``). Then
    ``sip_code`` (the context's ``UserEvent`` after a ``Dial()`` that
    failed) and ``ended`` (``ChannelDestroyed``, with its cause). None for
    anything else. Pure."""
    kind = ev.get("type")
    if kind == "Dial":
        who = "callee" if ev.get("caller") else "agent"
        status = ev.get("dialstatus", "")
        step = {"": "dialled", "RINGING": "ringing", "ANSWER": "answered" if who == "callee" else "up"}.get(
            status, "failed" if status in _FAILED else None)
        return f"{who}_{step}" if step else None
    if kind == "ChannelUserevent" and ev.get("eventname") == "c2d-leg":
        return "sip_code"
    if kind == "ChannelDestroyed":
        return "ended"
    return None


class NativeBridging:
    """The natively bridged subject (see the module docstring).

    ``ari``: the load generator's :class:`HttpPool`; ``host``/``port``/``auth``:
    ARI; ``agent``: the agent's extension; ``clid``: the CLID; ``local``: the
    agent leg through a Local channel (:func:`native_agent_leg`). ``place(rec)``
    is the subject interface of ``bench/subjects.py`` (``rec.status`` 200 when
    Asterisk took the agent leg; ``rec.call_id`` is the call's id, the leg's
    channel id ``<call id>-agent``).
    """

    ok_status = 200

    def __init__(self, ari: HttpPool, host: str, port: int, auth: tuple[str, str], agent: str, clid: str,
                 local: bool = False):
        self.ari, self.agent, self.clid, self.local = ari, agent, clid, local
        self.name = "native-local" if local else "native"
        self.app = APP + ("-local" if local else "")     # an app's events go to one WebSocket
        self.app_http = HttpPool(host, port, auth=auth, max_conns=32)
        self.url = f"ws://{host}:{port}/ari/events?app={self.app}&subscribeAll=false"
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._ids = itertools.count(1)
        self.placed = 0
        self.errors = 0
        self.seen: dict[str, set[str]] = {}     # call id -> the step_of() of its events
        self._ws = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Connect the app and narrow its events to :data:`EVENTS`."""
        self._ws = await open_app(self.url, self._headers, self.app_http, self.app, EVENTS)
        self._task = asyncio.create_task(self._read())

    async def stop(self) -> None:
        """Close the socket and the app's connections."""
        await close_app(self._ws, self._task)
        await self.app_http.close()

    async def place(self, rec) -> None:
        """Originate the agent leg of one call to ``rec.callee``, then follow it."""
        from bench.subjects import _send   # the same request path as the other subjects

        call_id = f"native{next(self._ids):08d}"
        rec.call_id = call_id
        await _send(self.ari, rec, "POST", "/ari/channels",
                    **native_agent_leg(call_id, self.agent, rec.callee, self.clid, self.local))
        self.placed += 1
        if rec.status == self.ok_status:
            try:
                status, _, _ = await asyncio.wait_for(self.app_http.request(
                    "POST", f"/ari/applications/{self.app}/subscription",
                    params={"eventSource": f"channel:{call_id}-agent"}), timeout=10)
                if status != 200:
                    self.errors += 1
            except (HttpError, OSError, asyncio.TimeoutError):
                self.errors += 1

    async def hangup(self, call_id: str) -> bool:
        """SPEC §2's DELETE of a natively bridged call: hang up its agent leg (the
        dialplan's ``Dial()`` then hangs up the callee). False when it was gone."""
        status, _, _ = await self.app_http.request("DELETE", f"/ari/channels/{call_id}-agent")
        return status == 204

    async def _read(self) -> None:
        async for ev in app_events(self._ws):
            step, call_id = step_of(ev), call_of(ev)
            if step is not None and call_id is not None:
                self.seen.setdefault(call_id, set()).add(step)

    @property
    def observed(self) -> Counter:
        """How many calls had an event of each step (``step_of``)."""
        return Counter(step for steps in self.seen.values() for step in steps)
