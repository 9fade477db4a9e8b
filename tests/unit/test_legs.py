"""What each originate carries (calls/legs.py; docs/architecture.md, *Legs and ids*):
the CDR variables on every leg (docs/cdr.md), the agent's connected line, and only
our own CLID ever presented through the trunk (SPEC §3.1, §3.7; field reports C16, C17)."""

from __future__ import annotations

import pytest

from platforma_c2d.calls.legs import agent_originate, callee_channel_id, callee_originate, is_ours
from platforma_c2d.calls.model import Call, Leg, Origin
from platforma_c2d.config import DialConfig

CALL_ID = "b" * 32
CDR = {"CDR(call_ref)": "order-42", "CDR(c2d_call_id)": CALL_ID, "CDR(c2d_agent)": None,
       "CDR(c2d_clid)": "0215550199"}
AS_CLID = {"CALLERID(num)": "0215550199", "CALLERID(name)": "",
           "CONNECTEDLINE(num)": "0215550199", "CONNECTEDLINE(name)": ""}
#: A trunk channel the service originates straight: a REFER from the carrier moves nobody.
REFER_REFUSED = {"TRANSFER_CONTEXT": "c2d-trunk-refer-refused"}


def call(agent: str, external: bool, origin: Origin = Origin.REST) -> Call:
    made = Call(id=CALL_ID, origin=origin, agent=agent, callee="0215550100", outbound_id="0215550199",
                clid="0215550199", call_ref="order-42", agent_is_external=external)
    made.agent_leg = Leg("agent", "1700000000.12" if origin is Origin.WEBRTC else f"c2d-{CALL_ID}-agent")
    return made


def cdr(agent: str, role: str) -> dict:
    return {**CDR, "CDR(c2d_agent)": agent, "CDR(c2d_leg)": role}


STRAIGHT = DialConfig(trunk_leg_context="", agent_leg_context="")


@pytest.mark.parametrize("agent,external,endpoint,shown", [
    ("1001", False, "PJSIP/1001", {"CONNECTEDLINE(num)": "0215550100", "CONNECTEDLINE(name)": "0215550100"}),
    ("0215550111", True, "PJSIP/0215550111@trunk", {**AS_CLID, **REFER_REFUSED}),   # never the callee's number on the trunk
])
def test_the_agent_legs_originate_straight_to_the_endpoint(agent, external, endpoint, shown):
    spec = agent_originate(call(agent, external), STRAIGHT)
    assert spec.endpoint == endpoint
    assert spec.channel_id == f"c2d-{CALL_ID}-agent" and spec.app_args == f"c2d,agent,{CALL_ID}"
    assert spec.variables == {**cdr(agent, "agent"), **shown}
    assert spec.timeout_s == DialConfig().agent_ring_timeout_s + 5 and spec.originator is None
    assert spec.other_channel_id is None


def test_an_extensions_leg_through_the_dialplan_has_the_callee_as_extension_and_the_agent_as_caller():
    dial = DialConfig(auto_answer="call-info")
    assert dial.agent_leg_context == "c2d-agent-leg"                 # the default
    spec = agent_originate(call("1001", False), dial)
    assert spec.endpoint == "Local/0215550100@c2d-agent-leg/n"      # ADR 0014: dst = the callee
    assert spec.other_channel_id == f"c2d-{CALL_ID}-agent-dial"
    v = spec.variables
    assert list(v)[0] == "CDR_PROP(disable)" and v["CDR_PROP(disable)"] == "1"   # ;1 has no row
    assert (v["CONNECTEDLINE(num)"], v["CONNECTEDLINE(name)"]) == ("1001", "")   # ;2's caller: src
    assert (v["C2D_LEG_DIAL"], v["C2D_LEG_SHOW"]) == ("PJSIP/1001", "0215550100")
    assert (v["C2D_LEG_ANSWER_HEADER"], v["C2D_LEG_ANSWER_VALUE"]) == ("Call-Info", "<sip:127.0.0.1>;answer-after=0")
    assert (v["C2D_LEG_C2D_LEG"], v["C2D_LEG_CALL_REF"], v["C2D_LEG_C2D_AGENT"]) == ("agent", "order-42", "1001")
    assert v["C2D_LEG_TIMEOUT"] == str(dial.agent_ring_timeout_s + 5)
    assert not any(k.startswith("PJSIP_HEADER") for k in v)      # the handler adds it on the phone
    quiet = agent_originate(call("1001", False), DialConfig()).variables
    assert (quiet["C2D_LEG_ANSWER_HEADER"], quiet["C2D_LEG_ANSWER_VALUE"]) == ("", "")


def test_an_external_agents_leg_through_the_dialplan_is_a_trunk_leg_to_the_agents_number():
    spec = agent_originate(call("0215550111", True), DialConfig())
    assert spec.endpoint == "Local/0215550111@c2d-trunk-leg/n"      # dst = the number dialled
    assert spec.other_channel_id == f"c2d-{CALL_ID}-agent-dial"
    v = spec.variables
    assert v["C2D_LEG_DIAL"] == "PJSIP/0215550111@trunk" and v["C2D_LEG_C2D_LEG"] == "agent"
    assert {k: v[k] for k in AS_CLID} == AS_CLID             # only the CLID through the trunk
    assert "C2D_LEG_SHOW" not in v and not any(k.startswith("PJSIP_HEADER") for k in v)


@pytest.mark.parametrize("origin,originator", [
    (Origin.REST, f"c2d-{CALL_ID}-agent"), (Origin.WEBRTC, "1700000000.12")])
def test_the_callee_legs_originate_presents_the_clid_and_shares_the_agents_linkedid(origin, originator):
    spec = callee_originate(call("1001", False, origin), DialConfig(trunk_leg_context=""))
    assert spec.endpoint == "PJSIP/0215550100@trunk"          # straight to the trunk
    assert spec.channel_id == callee_channel_id(CALL_ID) and spec.app_args == f"c2d,callee,{CALL_ID}"
    assert spec.variables == {**cdr("1001", "callee"), **AS_CLID, **REFER_REFUSED}
    assert spec.originator == originator
    assert spec.kwargs()["originator"] == originator


def test_auto_answer_goes_on_an_extensions_leg_only():
    dial = DialConfig(auto_answer="call-info", trunk_leg_context="", agent_leg_context="")
    assert "PJSIP_HEADER(add,Call-Info)" in agent_originate(call("1001", False), dial).variables
    assert not any(k.startswith("PJSIP_HEADER") for k in agent_originate(call("0215550111", True), dial).variables)


@pytest.mark.parametrize("object_id,ours", [
    (f"c2d-{CALL_ID}-agent", True), (f"c2d-{CALL_ID}", True), ("1700000000.12", False), ("PJSIP/c2d", False)])
def test_our_channels_and_bridges_are_known_by_their_ids(object_id, ours):
    assert is_ours(object_id) is ours


def test_a_trunk_leg_through_the_dialplan_is_a_local_channel_with_the_number_as_extension():
    dial = DialConfig()
    assert dial.trunk_leg_context == "c2d-trunk-leg"                 # the default
    spec = callee_originate(call("1001", False), dial)
    assert spec.endpoint == "Local/0215550100@c2d-trunk-leg/n"      # ADR 0014: dst = the number
    assert spec.channel_id == f"c2d-{CALL_ID}-callee"
    assert spec.other_channel_id == f"c2d-{CALL_ID}-callee-dial"
    assert spec.kwargs()["other_channel_id"] == spec.other_channel_id
    v = spec.variables
    assert v["CDR_PROP(disable)"] == "1" and list(v)[0] == "CDR_PROP(disable)"   # ;1 has no row
    assert v["C2D_LEG_DIAL"] == "PJSIP/0215550100@trunk"
    assert v["C2D_LEG_TIMEOUT"] == str(dial.callee_ring_timeout_s + 5)
    assert (v["C2D_LEG_CALL_REF"], v["C2D_LEG_C2D_CALL_ID"], v["C2D_LEG_C2D_LEG"]) == ("order-42", CALL_ID, "callee")
    assert (v["C2D_LEG_C2D_AGENT"], v["C2D_LEG_C2D_CLID"]) == ("1001", "0215550199")
    assert {k: v[k] for k in AS_CLID} == AS_CLID             # the trunk still sees only the CLID
    straight = callee_originate(call("1001", False), DialConfig(trunk_leg_context=""))
    assert straight.other_channel_id is None and "other_channel_id" not in straight.kwargs()
    assert "C2D_LEG_DIAL" not in straight.variables


def test_the_trunk_leg_context_is_used_only_when_the_dialplan_says_it_is_merged():
    from platforma_c2d.calls.trunk_leg import effective_dial
    configured = DialConfig()
    assert configured.trunk_leg_context == "c2d-trunk-leg"
    assert effective_dial(configured, "c2d-trunk-leg") is configured
    for unset in ("", None, "another-context"):
        assert effective_dial(configured, unset).trunk_leg_context == ""
        assert effective_dial(configured, unset).trunk_endpoint == configured.trunk_endpoint
    straight = DialConfig(trunk_leg_context="")
    assert effective_dial(straight, "c2d-trunk-leg") is straight


def test_the_agent_leg_context_is_used_only_when_the_dialplan_says_it_is_merged():
    from platforma_c2d.calls.trunk_leg import effective_dial
    configured = DialConfig()
    assert effective_dial(configured, "c2d-agent-leg", "agent_leg_context") is configured
    for unset in ("", None, "c2d-trunk-leg"):
        dial = effective_dial(configured, unset, "agent_leg_context")
        assert (dial.agent_leg_context, dial.trunk_leg_context) == ("", "c2d-trunk-leg")
