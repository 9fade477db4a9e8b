"""``[dial] bridging = "dialplan"`` (ADR 0018): when it is used, and what the agent leg
carries for ``[c2d-native-call]`` (calls/native.py, calls/legs.py). The calls
themselves are tested against the real Asterisk (tests/integration/test_native_calls.py)."""

from __future__ import annotations

import pytest

from platforma_c2d.calls.legs import agent_originate
from platforma_c2d.calls.model import Call, Leg, Origin
from platforma_c2d.calls.native import bridging_in_use
from platforma_c2d.config import ConfigError, DialConfig, loads_config
from platforma_c2d.config.dialplan_check import native_call_line
from platforma_c2d.rules import validate_call_request
from tests.unit.test_engine_fake_ari import BODY, ev, world  # noqa: F401 - world is a fixture

DIALPLAN = DialConfig(bridging="dialplan", trunk_endpoint="PJSIP/{number}@trunk", callee_ring_timeout_s=40,
                      max_call_duration_s=600, tone_s=3)


@pytest.mark.parametrize("bridging, context, marker, used", [
    ("dialplan", "c2d-agent-leg", "1", True),
    ("dialplan", "c2d-agent-leg", " 1 ", True),
    ("dialplan", "c2d-agent-leg", "", False),      # context not merged
    ("dialplan", "c2d-agent-leg", None, False),    # Asterisk did not answer
    ("dialplan", "c2d-agent-leg", "0", False),
    ("dialplan", "", "1", False),                  # no Local agent leg to continue
    ("stasis", "c2d-agent-leg", "1", False),
])
def test_dialplan_bridging_needs_the_option_the_agent_leg_context_and_the_marker(bridging, context, marker, used):
    dial = DialConfig(bridging=bridging, agent_leg_context=context)
    assert bridging_in_use(dial, marker) is used


def make_call(native: bool) -> Call:
    call = Call(id="c" * 32, origin=Origin.REST, agent="1001", callee="0215550100", outbound_id="",
                clid="0215550199", call_ref="r-1", native=native)
    call.agent_leg = Leg("agent", f"c2d-{'c' * 32}-agent")
    return call


def test_a_natively_bridged_agent_leg_carries_what_the_context_reads():
    variables = agent_originate(make_call(True), DIALPLAN).variables
    assert {k: v for k, v in variables.items() if k.startswith("C2D_NATIVE_")} == {
        "C2D_NATIVE_DIAL": "PJSIP/0215550100@trunk", "C2D_NATIVE_TIMEOUT": "40",
        "C2D_NATIVE_MAX_S": "600", "C2D_NATIVE_TONE_S": "3"}
    # The CLID and the CDR variables the context tags the callee's row with.
    assert variables["C2D_LEG_C2D_CLID"] == "0215550199"
    assert variables["C2D_LEG_C2D_CALL_ID"] == "c" * 32 and variables["C2D_LEG_CALL_REF"] == "r-1"


def test_a_stasis_bridged_agent_leg_carries_nothing_more():
    stasis = agent_originate(make_call(False), DIALPLAN).variables
    assert not [k for k in stasis if k.startswith("C2D_NATIVE_")]
    native = agent_originate(make_call(True), DIALPLAN).variables
    assert {k: v for k, v in native.items() if not k.startswith("C2D_NATIVE_")} == stasis


def test_bridging_is_stasis_by_default_and_refuses_other_values():
    assert loads_config("", env={}).dial.bridging == "stasis"
    assert loads_config('[dial]\nbridging = "dialplan"\n', env={}).dial.bridging == "dialplan"
    assert loads_config("", env={"PLATFORMA_C2D_DIAL_BRIDGING": "dialplan"}).dial.bridging == "dialplan"
    with pytest.raises(ConfigError) as info:
        loads_config('[dial]\nbridging = "native"\n', env={})
    assert any("bridging" in p and "dialplan" in p for p in info.value.problems), info.value.problems


SHOW_CONTEXT = """[ Context 'c2d-native-call' created by 'pbx_config' ]
  '_X.' =>          1. Set(CDR_PROP(disable)=0)                   [extensions.conf:356]
                    2. Dial(${C2D_NATIVE_DIAL},${C2D_NATIVE_TIMEOUT},g)      [extensions.conf:366]
"""


SHOW_TRUNK = """[ Context 'c2d-native-trunk' created by 'pbx_config' ]
  '_X.' =>          1. Set(CDR(call_ref)=${C2D_LEG_CALL_REF})      [extensions.conf:390]
                    2. Dial(${C2D_NATIVE_DIAL},$[${C2D_NATIVE_TIMEOUT} + 5],gi)      [extensions.conf:395]
"""
BOTH = {"c2d-native-call": SHOW_CONTEXT, "c2d-native-trunk": SHOW_TRUNK}


@pytest.mark.parametrize("dial, marker, shown, level, words", [
    (DialConfig(), "", {}, None, ""),
    (DialConfig(bridging="dialplan", agent_leg_context=""), "1", BOTH, "WARN", "agent_leg_context"),
    (DialConfig(bridging="dialplan"), "", BOTH, "WARN", "C2D_NATIVE_CALL global is not 1"),
    (DialConfig(bridging="dialplan"), "1", {}, "FAIL", "c2d-native-call does not exist"),
    (DialConfig(bridging="dialplan"), "1", {"c2d-native-call": SHOW_CONTEXT}, "FAIL",
     "c2d-native-trunk does not exist"),
    (DialConfig(bridging="dialplan"), "1", BOTH, "ok", "bridged by Asterisk"),
])
def test_check_says_whether_dialplan_bridging_can_be_used(dial, marker, shown, level, words):
    lines = native_call_line(dial, marker, lambda cmd: shown.get(cmd.rsplit("@", 1)[1], ""))
    if level is None:
        assert lines == []
    else:
        [(got, text)] = lines
        assert got == level and words in text, lines


def test_an_agent_gone_at_the_continue_ends_the_call_cancelled_by_the_agent(world):
    # The agent hangs up as the service continues the leg into the dialplan: ARI
    # answers 404; the call is the agent's giving up, not a failure.
    script, engine, stasis, journal = world
    engine.native.in_use = True
    script.status[("POST", "/ari/channels/c2d-")] = 404

    async def go():
        call = await engine.start_rest_call(validate_call_request(BODY), "0215550199")
        await stasis.on_event(ev("StasisStart", call.agent_leg.channel_id, "Up"))
        return call

    call = script.run(go())
    [cont] = [r for r in script.sent("POST", "/ari/channels/c2d-") if r.path.endswith("/continue")]
    assert cont.query == {"context": "c2d-native-call", "extension": "0215550100", "priority": "1"}
    assert len(script.originates()) == 1   # the callee is the dialplan's to dial, never ours
    row = journal.get(call.id)
    assert (row["state"], row["reason"], row["ended_by"]) == ("ended", "cancelled", "agent"), row
