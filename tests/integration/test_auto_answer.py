"""Auto-answer of a REST call's agent leg (``[dial] auto_answer`` and
``auto_answer_agents``, docs/configuration.md): the agent's phone (a SIPp
UAS) records the header its INVITE carried; the trunk never gets one."""

from __future__ import annotations

import pytest

from testbed.sipp import uas_scenario

TRUNK_PORT = 5070
AGENTS = {"1001": 5071, "1002": 5072, "1003": 5073, "1004": 5074}
AUTO = {"dial": {"auto_answer": "call-info",
                 "auto_answer_agents": ["1002:alert-info", "1003:answer-after", "1004:off"]}}


def agent_invite_headers(make_service, sipp, agent: str, overrides: dict | None) -> dict[str, list[str]]:
    """Place a REST call for ``agent``; the auto-answer headers its phone received."""
    service = make_service(overrides)
    phone = sipp(f"agent{agent}", AGENTS[agent], uas_scenario(talk_ms=300))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    r = service.post_call({"agent": agent, "callee": "0215550100", "outbound_id": "0215550199"})
    assert r.status_code == 201, r.text
    assert service.wait_state(r.json()["id"], "ended", timeout=20)["reason"] == "completed"
    invite = phone.received("INVITE")[0]
    assert not any(m.header("Call-Info") or m.header("Alert-Info") for m in trunk.received())
    return {name: invite.header(name) for name in ("Call-Info", "Alert-Info")}


@pytest.mark.parametrize("agent,expected", [
    ("1001", {"Call-Info": ["<sip:127.0.0.1>;answer-after=0"], "Alert-Info": []}),
    ("1002", {"Call-Info": [], "Alert-Info": ["<http://127.0.0.1>;info=alert-autoanswer;delay=0"]}),
    ("1003", {"Call-Info": [], "Alert-Info": [";answer-after=0"]}),
    ("1004", {"Call-Info": [], "Alert-Info": []}),
])
def test_the_agent_phone_gets_the_auto_answer_header_of_its_family(asterisk, make_service, sipp,
                                                                   agent, expected):
    assert agent_invite_headers(make_service, sipp, agent, AUTO) == expected


def test_off_by_default(asterisk, make_service, sipp):
    assert agent_invite_headers(make_service, sipp, "1001", None) == {"Call-Info": [], "Alert-Info": []}
