"""calls.far_ends against a scripted ARI: the channel a Local leg's Dial() reached is
followed (a subscription per call) only when its PJSIP endpoint has an RTP timer, each
endpoint's settings are read once for many calls, and the followed channels stay
bounded without a scan of them per call."""

from __future__ import annotations

import asyncio

from platforma_c2d.calls import far_ends
from platforma_c2d.calls.far_ends import FarEnds, has_rtp_timer, pjsip_endpoint
from platforma_c2d.calls.model import Call, Leg, Origin, State
from platforma_c2d.rules import validate_call_request
from tests.unit.test_engine_fake_ari import BODY, ev, world  # noqa: F401 - the fixture

CONFIG = "/ari/asterisk/config/dynamic/res_pjsip/endpoint/"


def _answered(callee: str, far_id: str, far_name: str) -> dict:
    """The Dial event of a callee leg's ;2: the trunk's channel ``far_id`` answered."""
    return {"type": "Dial", "dialstatus": "ANSWER",
            "caller": {"id": callee + "-dial", "name": "Local/0215550100@c2d-trunk-leg-1;2"},
            "peer": {"id": far_id, "name": far_name, "state": "Up"}}


def test_the_channel_names_endpoint_and_its_timers():
    assert pjsip_endpoint("PJSIP/rtp-timeout-trunk-0000001a") == "rtp-timeout-trunk"
    assert pjsip_endpoint("PJSIP/trunk-00000007") == "trunk"
    assert pjsip_endpoint("Local/100@ctx-00000001;2") is None and pjsip_endpoint("PJSIP/x") is None
    assert has_rtp_timer([{"attribute": "rtp_timeout_hold", "value": "30"}])
    assert not has_rtp_timer([{"attribute": "rtp_timeout", "value": "0"}, {"attribute": "allow", "value": "9"}])
    assert not has_rtp_timer(None) and not has_rtp_timer({"message": "x"})


def test_calls_on_an_endpoint_without_rtp_timers_subscribe_to_nothing_and_end_at_once(world):  # noqa: F811
    """Two calls through a trunk without rtp_timeout: one read of its settings for both,
    no subscription, and the callee's hangup ends each call at once (no wait for the
    trunk channel's end, whose event never comes)."""
    script, engine, stasis, journal = world
    script.answers[("GET", CONFIG + "trunk")] = [{"attribute": "rtp_timeout", "value": "0"}]

    async def one(n: int):
        call = await engine.start_rest_call(validate_call_request({**BODY, "call_ref": f"r{n}"}), "0215550199")
        agent, callee = call.agent_leg.channel_id, f"c2d-{call.id}-callee"
        await stasis.on_event(ev("StasisStart", agent, "Up"))
        await stasis.on_event(_answered(callee, f"1765100000.{n}", f"PJSIP/trunk-0000000{n}"))
        await stasis.on_event(ev("StasisStart", callee, "Up"))
        await stasis.on_event(ev("ChannelDestroyed", callee, cause=16))
        return call

    async def go():
        calls = await asyncio.gather(one(1), one(2))
        await asyncio.sleep(0.05)
        return calls

    calls = script.run(go())
    assert script.sent("POST", "/ari/applications/click2dial/subscription") == []
    assert len(script.sent("GET", CONFIG)) == 1
    for call in calls:
        row = journal.get(call.id)
        assert (row["reason"], row["ended_by"], row["cause"]) == ("completed", "callee", 16), row
    assert engine.far_ends._by_far == {} and engine.far_ends._by_leg == {}


def test_an_endpoint_whose_settings_cannot_be_read_is_followed_as_before(world):  # noqa: F811
    script, engine, stasis, _ = world
    script.status[("GET", CONFIG)] = 500

    async def go():
        call = await engine.start_rest_call(validate_call_request(BODY), "0215550199")
        await stasis.on_event(ev("StasisStart", call.agent_leg.channel_id, "Up"))
        await stasis.on_event(_answered(f"c2d-{call.id}-callee", "1765100000.9", "PJSIP/trunk-00000009"))
        await asyncio.sleep(0.1)

    script.run(go())
    (subscribe,) = script.sent("POST", "/ari/applications/click2dial/subscription")
    assert subscribe.query == {"eventSource": "channel:1765100000.9"}


def test_followed_channels_of_ended_calls_are_dropped_oldest_first_without_a_scan(monkeypatch):
    """Past the bound, each new far channel looks at a few of the oldest: those of
    ended calls go (a lost ChannelDestroyed), live ones are kept."""
    monkeypatch.setattr(far_ends, "_MAX_FOLLOWED", 4)
    ends = FarEnds(ari=None)

    def add(n: int, ended: bool) -> None:
        call = Call(id=f"c{n}", origin=Origin.REST, agent="1001", callee="0215550100",
                    outbound_id="", clid="", call_ref="")
        if ended:
            call.state = State.ENDED
        ends._by_far[f"far{n}"] = ends._by_leg[f"leg{n}"] = far_ends._Followed(call, Leg("callee", f"leg{n}"),
                                                                               f"far{n}")
    add(0, False)
    for n in range(1, 4):
        add(n, True)
    ends._evict()   # room for one more: the live oldest kept, the first ended one dropped
    assert list(ends._by_far) == ["far2", "far3", "far0"] and "leg1" not in ends._by_leg
    add(4, True)
    ends._evict()
    assert list(ends._by_far) == ["far3", "far0", "far4"] and set(ends._by_leg) == {"leg0", "leg3", "leg4"}
    for n in range(5, 12):
        add(n, False)
    before = len(ends._by_far)
    ends._evict()   # the ended ones first; live ones are never dropped
    assert len(ends._by_far) == before - 2 and {"far0", "far5", "far11"} <= set(ends._by_far)
