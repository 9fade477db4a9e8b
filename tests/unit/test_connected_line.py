"""Which bridge a call gets and what its legs carry to keep their connected line
(calls/connected_line.py, docs/decisions/0015): the two-party bridge only with
the dialplan's subroutine, Asterisk's mixer otherwise (docs/decisions/0005)."""

from __future__ import annotations

import pytest

from platforma_c2d.calls.connected_line import bridge_type, keep_variables, sub_from_marker
from platforma_c2d.calls.legs import agent_originate, callee_originate
from platforma_c2d.calls.model import Call, Leg, Origin
from platforma_c2d.config import DialConfig

SUB = "c2d-connected-line"


def call(agent: str = "1001", external: bool = False) -> Call:
    made = Call(id="c" * 32, origin=Origin.REST, agent=agent, callee="0215550100",
                outbound_id="0215550199", clid="0215550199", call_ref="r", agent_is_external=external)
    made.agent_leg = Leg("agent", "c2d-" + "c" * 32 + "-agent")
    return made


@pytest.mark.parametrize("marker,sub", [
    ("c2d-connected-line", "c2d-connected-line"), ("", ""), (None, ""),
    ("bad context,s,1", ""), ("x" * 80, "")])
def test_only_a_context_name_in_the_marker_makes_the_two_party_bridge(marker, sub):
    assert sub_from_marker(marker) == sub
    assert bridge_type(sub) == ("mixing,proxy_media" if sub else "mixing,video_sfu")


def test_without_the_subroutine_no_leg_carries_it():
    assert keep_variables("", "0215550199", "") == {}
    for spec in (agent_originate(call(), DialConfig()), callee_originate(call(), DialConfig()),
                 agent_originate(call("0215550111", True), DialConfig())):
        assert "CONNECTED_LINE_SEND_SUB" not in spec.variables


@pytest.mark.parametrize("spec,args", [
    # the phone straight: it is shown the callee; through [c2d-agent-leg], ;1 keeps the agent (;2's caller)
    (lambda: agent_originate(call(), DialConfig(agent_leg_context=""), SUB), "0215550100,0215550100"),
    (lambda: agent_originate(call(), DialConfig(), SUB), "1001,"),
    (lambda: agent_originate(call("0215550111", True), DialConfig(), SUB), "0215550199,"),  # the CLID
    (lambda: callee_originate(call(), DialConfig(), SUB), "0215550199,"),
    (lambda: callee_originate(call(), DialConfig(trunk_leg_context=""), SUB), "0215550199,"),
])
def test_each_leg_keeps_the_connected_line_it_is_given(spec, args):
    variables = spec().variables
    assert variables["CONNECTED_LINE_SEND_SUB"] == f"{SUB},s,1"
    assert variables["CONNECTED_LINE_SEND_SUB_ARGS"] == args
    number, name = args.split(",")
    assert (variables["CONNECTEDLINE(num)"], variables["CONNECTEDLINE(name)"]) == (number, name)
