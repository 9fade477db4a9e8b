"""The engine and the trunk's pacer (SPEC §3.8) with a scripted ARI: an external agent's
leg waits for the trunk's turn or is refused with a clear reason; a carrier's 503 is
callee_unavailable (never busy or no answer) and holds the trunk."""

from __future__ import annotations

from platforma_c2d.calls.pacing import TrunkPacer
from platforma_c2d.rules import validate_call_request
from tests.unit.test_engine_fake_ari import BODY, ev, world  # noqa: F401 - the fixture

EXTERNAL = {**BODY, "agent": "0215550111"}


def test_an_external_agent_leg_the_trunk_has_no_turn_for_is_never_sent(world):
    script, engine, _, journal = world
    engine.pacer = TrunkPacer(max_calls_per_second=0, max_wait_s=1.0, hold_after_503_s=0)
    engine.pacer.held_until = float("inf")      # the carrier asked us to wait for ever

    call = script.run(engine.start_rest_call(validate_call_request(EXTERNAL), "0215550199"))
    assert script.originates() == []
    row = journal.get(call.id)
    assert row["reason"] == "agent_unavailable"
    assert "held" in journal.events(call.id)[-1]["detail"]


def test_a_carrier_503_is_unavailable_holds_the_trunk_and_is_counted(world):
    script, engine, stasis, journal = world
    engine.pacer = TrunkPacer(max_calls_per_second=0, max_wait_s=5.0, hold_after_503_s=7.0)

    async def go():
        call = await engine.start_rest_call(validate_call_request(BODY), "0215550199")
        agent = call.agent_leg.channel_id
        await stasis.on_event(ev("StasisStart", agent, "Up"))
        callee = call.callee_leg.channel_id
        await stasis.on_event(ev("ChannelHangupRequest", callee, cause=34, tech_cause=503))
        await stasis.on_event(ev("ChannelDestroyed", callee, cause=34, tech_cause=503))
        return call

    call = script.run(go())
    assert journal.get(call.id)["reason"] == "callee_unavailable"
    assert "refused by the carrier (SIP 503" in journal.events(call.id)[-1]["detail"]
    assert engine.pacer.held_until - engine.pacer.clock() > 5.0
    assert engine.metrics.trunk_refused.labels("503")._value.get() == 1
