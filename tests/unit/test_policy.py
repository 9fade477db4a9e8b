"""[policy]: which numbers may be dialled, external agents' numbers included."""

from __future__ import annotations

import pytest

from platforma_c2d.calls.errors import DestinationNotAllowed
from platforma_c2d.calls.policy import Policy
from platforma_c2d.config import ClidConfig, PolicyConfig
from platforma_c2d.rules import validate_fields


def request(agent: str, callee: str = "0215550100"):
    return validate_fields(agent=agent, callee=callee, outbound_id="0215550199", call_ref="")


def test_an_external_agent_is_held_to_the_callee_deny_list_while_no_agent_list_is_set():
    policy = Policy(ClidConfig(), PolicyConfig(callee_deny_prefixes=("0900", "00")))
    for agent in ("0900123456", "0044207946001"):
        with pytest.raises(DestinationNotAllowed) as refused:
            policy.check(request(agent))
        assert refused.value.details == {"fields": {"agent": "calls to this number are not allowed on this PBX"}}
        assert "callee_deny_prefixes" in refused.value.hint
    policy.check(request("0215550111"))     # a national agent number still goes out
    policy.check(request("1001"))           # an extension is no trunk leg


def test_an_external_agent_is_held_to_the_callee_allow_list_while_no_agent_list_is_set():
    policy = Policy(ClidConfig(), PolicyConfig(callee_allow_prefixes=("021",)))
    with pytest.raises(DestinationNotAllowed):
        policy.check(request("0315550111"))
    policy.check(request("0215550111"))


def test_agent_number_lists_once_set_replace_the_callee_lists_for_external_agents():
    policy = Policy(ClidConfig(), PolicyConfig(callee_deny_prefixes=("0900", "00"),
                                               agent_number_allow_prefixes=("0", "27", "00")))
    policy.check(request("0044207946001"))   # an agent abroad, allowed by the agent list
    with pytest.raises(DestinationNotAllowed) as refused:
        policy.check(request("0044207946001", callee="0044207946000"))
    assert set(refused.value.details["fields"]) == {"callee"}
    denied = Policy(ClidConfig(), PolicyConfig(agent_number_deny_prefixes=("0800",)))
    with pytest.raises(DestinationNotAllowed) as refused:
        denied.check(request("0800123456"))
    assert "agent_number_allow_prefixes/agent_number_deny_prefixes" in refused.value.hint
    denied.check(request("0900123456"))      # no callee list, and the agent list lets it by


def test_a_phone_named_like_a_number_is_not_held_to_the_callee_lists():
    """A header or FastAGI call's agent is the calling endpoint: nothing is dialled
    to it, so only agent_number_* lists (when set) apply to its name."""
    policy = Policy(ClidConfig(), PolicyConfig(callee_allow_prefixes=("021",)))
    policy.check(request("0315550111"), agent_dialled=False)
    with pytest.raises(DestinationNotAllowed):
        policy.check(request("0315550111"))
    listed = Policy(ClidConfig(), PolicyConfig(agent_number_deny_prefixes=("031",)))
    with pytest.raises(DestinationNotAllowed):
        listed.check(request("0315550111"), agent_dialled=False)
