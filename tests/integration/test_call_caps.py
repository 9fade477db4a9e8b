"""``[limits]`` caps on calls up at once, for the service and per token,
against the real service and Asterisk (docs/security.md).

The audit's case: a leaked token held 40 calls with made-up external agent
numbers, ringing through the trunk. With the caps, the call past the cap is
refused 429 ``too-many-calls`` and never dialled, and the metric counts it.
"""

from __future__ import annotations

import hashlib
import time


from platforma_c2d.store.journal import Journal
from testbed.sipp import uac_scenario, uas_scenario

TRUNK_PORT = 5070
TOKEN_A, TOKEN_B = "leaked-token-of-crm-a", "token-of-crm-b"


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def body(i: int) -> dict:
    """A call whose agent is an external number (its first leg goes out through the trunk)."""
    return {"agent": f"02155520{i:02d}", "callee": "0215550100", "outbound_id": "0215550199",
            "call_ref": f"cap-{i}"}


def test_calls_past_the_per_token_and_service_caps_are_429_and_never_dialled(
        asterisk, make_service, sipp):
    svc = make_service({
        "auth": {"token": [{"sha256": sha(TOKEN_A), "name": "crm-a"},
                           {"sha256": sha(TOKEN_B), "name": "crm-b"}]},
        "limits": {"max_active_calls": 4, "max_active_calls_per_token": 3}})
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(answer=False))
    a = {"Authorization": f"Bearer {TOKEN_A}"}
    b = {"Authorization": f"Bearer {TOKEN_B}"}
    placed = [svc.post_call(body(i), headers=a) for i in range(3)]
    assert [r.status_code for r in placed] == [201] * 3, [r.text for r in placed]
    refused = svc.post_call(body(3), headers=a)
    assert refused.status_code == 429 and refused.json()["error"] == "too-many-calls"
    assert refused.json()["details"] == {"scope": "token", "max_active_calls": 3}
    assert int(refused.headers["Retry-After"]) > 0
    # Another token still has room, up to the service's cap.
    other = svc.post_call(body(4), headers=b)
    assert other.status_code == 201, other.text
    full = svc.post_call(body(5), headers=b)
    assert full.status_code == 429 and full.json()["details"]["scope"] == "service"
    time.sleep(1.0)
    dialled = {m.first_line.split()[1][4:].split("@")[0] for m in trunk.received("INVITE")}
    assert dialled == {body(i)["agent"] for i in (0, 1, 2, 4)}, dialled
    metrics = svc.http.get("/metrics").text
    assert 'c2d_requests_rejected_total{error="too-many-calls"} 2.0' in metrics
    # A call that ends frees its place.
    r = svc.http.delete(f"/click2dial/calls/{placed[0].json()['id']}", headers=a)
    assert r.status_code == 200, r.text
    again = svc.post_call(body(6), headers=a)
    assert again.status_code == 201, again.text
    for call in [*placed[1:], other, again]:
        svc.http.delete(f"/click2dial/calls/{call.json()['id']}", headers=a if call is not other else b)



# --------------------------------------------------------------------------
# Every way in obeys the caps: browser (header) calls and FastAGI calls
# --------------------------------------------------------------------------

PHONE_PORT, AGI_PHONE_PORT = 5081, 5091


def finals_of(phone, count: int, timeout: float = 20.0) -> list[int]:
    """The final response codes the phone got to its INVITEs, sorted (waits for ``count``)."""
    deadline = time.monotonic() + timeout
    while True:
        found = sorted(m.status for m in phone.messages()
                       if m.direction == "received" and (m.status or 0) >= 200
                       and "INVITE" in (m.header("CSeq") or [""])[0])
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def refusal_details(journal: Journal) -> list[str]:
    """The last journal detail of each refused (``rejected``) call."""
    calls, _total = journal.list(limit=50)
    return [journal.events(c["id"])[-1]["detail"] for c in calls if c["reason"] == "rejected"]


def one_refused_of_two_calls(asterisk, svc, sipp, phone_port: int, agent: str) -> str:
    """The phone of ``agent`` calls twice, a second apart, the first call still
    up (4 s) when the second comes: asserts the second got 403 and the trunk
    one INVITE only, and that the first call, hung up by the phone, leaves
    nothing in Asterisk while the service still runs (stopped in the middle
    of that hang-up, the service left the call's empty bridge to its next
    start); returns the journal's detail of the refused call."""
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200))
    phone = sipp("phone", phone_port, uac_scenario(target="0215550100", from_user=agent, talk_ms=4000),
                 uac_target="127.0.0.1:5060", calls=2, rate=1)
    assert finals_of(phone, 2) == [200, 403]
    assert len(trunk.received("INVITE")) == 1
    phone.wait(timeout=20)   # the first call's BYE after its 4 s (the 403 counts as a failed call)
    assert asterisk.wait_idle() == ([], [])
    [detail] = refusal_details(Journal(svc.store_url))
    return detail


def test_a_header_call_past_the_service_cap_is_refused_403_and_never_dialled(
        asterisk, make_service, sipp):
    """A browser phone's second call while ``max_active_calls`` (1) calls are up:
    the phone gets 403, the trunk sees one INVITE, the journal says why."""
    svc = make_service({"limits": {"max_active_calls": 1, "max_active_calls_per_agent": 5}})
    detail = one_refused_of_two_calls(asterisk, svc, sipp, PHONE_PORT, "2001")
    assert "max_active_calls" in detail, detail


def test_a_fastagi_call_past_the_service_cap_is_refused_403(asterisk, make_service, sipp):
    """The dialplan's second call while ``max_active_calls`` (1) calls are up:
    the FastAGI server refuses it (the dialplan answers 403), nothing more
    reaches the trunk, the journal names the limit. (The per-agent limit is
    not the FastAGI server's: a burst from one phone is served, test_agi.py.)"""
    refused_as = "too-many-calls"
    svc = make_service({"limits": {"max_active_calls_per_agent": 1, "max_active_calls": 1}},
                       command="agi")
    deadline = time.monotonic() + 30
    while "FastAGI listening" not in svc.log_path.read_text(errors="replace"):
        assert svc.proc.poll() is None and time.monotonic() < deadline, svc.tail_log()
        time.sleep(0.05)
    detail = one_refused_of_two_calls(asterisk, svc, sipp, AGI_PHONE_PORT, "3001")
    assert detail.startswith(f"refused ({refused_as}"), detail


def test_an_agents_open_fastagi_call_makes_the_agent_busy_for_the_api(asterisk, make_service, sipp):
    """Agent 3001 is on a call placed through the dialplan (FastAGI) when a CRM
    asks the API to call for 3001: 409 agent-busy (``[limits]
    max_active_calls_per_agent`` = 1 counts every origin), nothing more is
    dialled; once the dialplan's call has ended, the API's call is placed."""
    from tests.integration.test_agi import start_agi_named

    svc = make_service({"limits": {"max_active_calls_per_agent": 1}}, name="shared")
    _agi, journal = start_agi_named(make_service, "shared", {"limits": {"max_active_calls_per_agent": 1}})
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200))
    phone = sipp("agiphone", AGI_PHONE_PORT, uac_scenario(target="0215550100", from_user="3001", talk_ms=3000),
                 uac_target="127.0.0.1:5060", calls=1)
    assert trunk.wait_for(lambda m: m.direction == "sent" and m.status == 200, timeout=15)
    [open_call] = [c for c in journal.list(limit=5)[0] if c["state"] != "ended"]
    assert (open_call["origin"], open_call["agent"]) == ("agi", "3001"), open_call
    body = {"agent": "3001", "callee": "0215550101", "outbound_id": "0215550199", "call_ref": "api-1"}
    busy = svc.post_call(body)
    assert busy.status_code == 409 and busy.json()["error"] == "agent-busy", busy.text
    assert busy.json()["details"] == {"agent": "3001", "max_active_calls": 1}
    assert phone.wait(timeout=20) == 0
    deadline = time.monotonic() + 10
    while journal.get(open_call["id"])["state"] != "ended":
        assert time.monotonic() < deadline, journal.get(open_call["id"])
        time.sleep(0.1)
    placed = svc.post_call(body)
    assert placed.status_code == 201, placed.text
    assert svc.http.delete(f"/click2dial/calls/{placed.json()['id']}").status_code == 200
    assert len(trunk.received("INVITE")) == 1
