"""StasisApp.dispatch: one call's events in order, different calls concurrently."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from platforma_c2d.calls.model import Call, Leg, Origin
from platforma_c2d.ari.records import parse
from platforma_c2d.calls.stasis import RECORDS, StasisApp


def _call(cid: str) -> Call:
    call = Call(id=cid * 32, origin=Origin.REST, agent="1001", callee="0215550100",
                outbound_id="random", clid="0115550001", call_ref="")
    call.agent_leg = Leg("agent", f"c2d-{cid}-agent")
    call.callee_leg = Leg("callee", f"c2d-{cid}-callee")
    return call


def test_events_of_one_call_keep_their_order_and_calls_do_not_wait_for_each_other():
    a, b = _call("a"), _call("b")
    engine = SimpleNamespace(by_channel={leg.channel_id: c for c in (a, b) for leg in c.legs()})
    app = StasisApp(engine, ari=None, picker=None, policy=None)
    seen: list[str] = []

    delays = {"a1": 0.05}

    async def handle(ev):  # stands for the engine's work, with ARI round trips
        await asyncio.sleep(delays.get(ev.channel.name, 0.0))
        seen.append(ev.channel.name)

    app.handle = handle

    async def go():
        for name, chan in (("a1", "c2d-a-agent"), ("a2", "c2d-a-callee"), ("a3", "c2d-a-agent"),
                           ("b1", "c2d-b-agent"), ("x1", "browser-1")):
            # The event's channel name labels it here.
            await app.dispatch({"type": "ChannelStateChange", "channel": {"id": chan, "name": name}})
        while app._tails:
            await asyncio.sleep(0.01)

    asyncio.run(go())
    assert [n for n in seen if n.startswith("a")] == ["a1", "a2", "a3"]  # the callee's event waited
    assert seen.index("b1") < seen.index("a1") and seen.index("x1") < seen.index("a1")


def test_the_dialplan_half_of_a_local_leg_reports_only_the_final_sip_code():
    a = _call("a")
    got: list[tuple] = []

    async def on_hangup_request(call, leg, cause, sip_code=None):
        got.append((call.id, leg.role, cause, sip_code))

    dialled: list[str] = []
    engine = SimpleNamespace(by_channel={leg.channel_id: a for leg in a.legs()},
                             on_hangup_request=on_hangup_request, pacer=SimpleNamespace(sent=dialled.append))
    app = StasisApp(engine, ari=None, picker=None, policy=None)
    half = {"id": "c2d-a-callee-dial"}
    assert app._key(parse({"type": "ChannelUserevent", "channel": half}, RECORDS)) == "c2d-a-agent"  # call's order
    assert app._key(parse({"type": "Dial", "caller": half, "peer": {"id": "1700.5"}}, RECORDS)) == "c2d-a-agent"

    async def go():
        for event in ({"type": "ChannelDestroyed", "channel": half, "cause": 16},
                      {"type": "Dial", "caller": half, "peer": {"id": "1700.5"}, "dialstatus": "CONGESTION"},
                      {"type": "ChannelUserevent", "eventname": "other", "channel": half,
                       "userevent": {"sip_code": "SIP 486 Busy Here"}},
                      # the last response Asterisk recorded after a 302 it did not follow
                      {"type": "ChannelUserevent", "eventname": "c2d-leg", "channel": half,
                       "userevent": {"sip_code": "SIP 100 Trying"}},
                      {"type": "ChannelUserevent", "eventname": "c2d-leg", "channel": half,
                       "userevent": {"sip_code": "SIP 503 Service Unavailable"}}):
            await app.on_event(event)

    asyncio.run(go())
    assert got == [("a" * 32, "callee", None, 503)]
    assert dialled == ["c2d-a-callee"]   # its Dial of the trunk told the pacer


def test_the_trunk_pacer_hears_of_each_legs_dial_of_its_endpoint_and_of_no_other_dial():
    a = _call("a")
    dialled: list[str] = []
    engine = SimpleNamespace(by_channel={leg.channel_id: a for leg in a.legs()},
                             pacer=SimpleNamespace(sent=dialled.append))
    app = StasisApp(engine, ari=None, picker=None, policy=None)
    app.handle = lambda ev: asyncio.sleep(0)

    async def go():
        for event in (
                # the originate's Dial of the Local channel's ;1: not yet the trunk
                {"type": "Dial", "peer": {"id": "c2d-a-callee", "name": "Local/0215550100@c2d-trunk-leg-1;1"}},
                # a leg originated straight to the trunk: its own channel is dialled
                {"type": "Dial", "peer": {"id": "c2d-b-callee", "name": "PJSIP/trunk-00000001"}},
                # the ;2 of a Local leg dials the trunk
                {"type": "Dial", "caller": {"id": "c2d-c-callee-dial"}, "peer": {"id": "1700.5"}},
                # an AGI call's Dial: none of ours
                {"type": "Dial", "caller": {"id": "1700.1"}, "peer": {"id": "1700.2", "name": "PJSIP/trunk-2"}}):
            await app.dispatch(event)
        await asyncio.sleep(0.01)

    asyncio.run(go())
    assert dialled == ["c2d-b-callee", "c2d-c-callee"]



def test_each_routed_event_type_parses_into_the_record_of_its_name_and_no_other_type_does():
    for kind in RECORDS:
        assert type(parse({"type": kind, "channel": {"id": "c"}}, RECORDS)).__name__ == kind
    assert parse({"type": "ChannelVarset", "channel": {"id": "c"}}, RECORDS) is None
