"""Click-to-dial over REST through the real Asterisk (SPEC §2, §3, §5)."""

from __future__ import annotations

import time

import pytest

from tests.bench.sipp import uas_scenario

AGENT_PORT, TRUNK_PORT = 5071, 5070


def _sip_user(value: str) -> str:
    """The user part of the first SIP URI in a header value."""
    start = value.find("sip:")
    if start < 0:
        return ""
    rest = value[start + 4:]
    return rest.split("@", 1)[0].split(";", 1)[0].split(">", 1)[0]


def assert_trunk_never_saw(trunk, forbidden: str) -> None:
    """SPEC §3.7: no message the trunk received may carry ``forbidden``."""
    for msg in trunk.received():
        for name in ("From", "P-Asserted-Identity", "Remote-Party-ID", "Contact", "To"):
            for value in msg.header(name):
                assert _sip_user(value) != forbidden, f"{msg.first_line}: {name}: {value}"


def cdr_rows_of(asterisk, call_id: str, count: int = 1):
    """CDR rows of a call's channels (ids ``c2d-<call id>-…``), whatever their variables say."""
    return asterisk.wait_cdr_rows(lambda r: call_id in r["uniqueid"] or call_id in r["dstchannel"]
                                  or call_id in r["linkedid"], count=count)


def assert_cdr_tagged(asterisk, call_id: str, call_ref: str) -> list[dict]:
    """SPEC §5: every CDR row of the call carries call_ref exactly once."""
    rows = cdr_rows_of(asterisk, call_id)
    assert rows, "no CDR row for the call"
    for row in rows:
        assert row["call_ref"] == call_ref, row
        assert row["c2d_call_id"] == call_id, row
    return rows


def test_success_agent_then_callee_then_callee_hangs_up(asterisk, service, sipp):
    agent = sipp("agent", AGENT_PORT, uas_scenario(ring_ms=200))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=300, talk_ms=2000))
    r = service.post_call({"agent": "1001", "callee": "0215550100",
                           "outbound_id": "0215550199", "call_ref": "ord-42"})
    assert r.status_code == 201, r.text
    call = r.json()
    assert r.headers["Location"] == f"/click2dial/calls/{call['id']}"
    assert call["state"] == "dialing_agent" and call["origin"] == "rest"
    assert call["clid"] == "0215550199" and call["call_ref"] == "ord-42"
    assert service.wait_state(call["id"], "connected")["state"] == "connected"
    final = service.wait_state(call["id"], "ended", timeout=15)
    assert final["state"] == "ended" and final["reason"] == "completed", final
    assert 1.5 <= final["duration_s"] <= 3.5, final
    assert final["answered_at"] and final["ended_at"]

    invite = trunk.received("INVITE")[0]
    assert invite.first_line.startswith("INVITE sip:0215550100@")
    assert _sip_user(invite.header("From")[0]) == "0215550199"
    assert [_sip_user(v) for v in invite.header("P-Asserted-Identity")] == ["0215550199"]
    assert_trunk_never_saw(trunk, "1001")
    # The agent's phone showed the callee's number.
    assert _sip_user(agent.received("INVITE")[0].header("From")[0]) == "0215550100"

    rows = assert_cdr_tagged(asterisk, call["id"], "ord-42")
    assert any(r["disposition"] == "ANSWERED" and r["dstchannel"].startswith("PJSIP/trunk-") for r in rows)
    asterisk.wait_idle()
    assert asterisk.channels() == [] and asterisk.bridges() == []
