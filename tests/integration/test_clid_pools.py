"""CLID pools on the real Asterisk (SPEC §12): the trunk receives, call after
call, the number the pool's policy chose, in From and in P-Asserted-Identity;
REST calls and header calls (a SIPp phone standing for the browser) alike."""

from __future__ import annotations

import time

from testbed.sipmessages import sip_user
from testbed.sipp import uac_scenario, uas_scenario

AGENT_PORT, TRUNK_PORT, PHONE_PORT = 5071, 5070, 5081
OUT = "X-Platforma-Outbound-ID"
NUMBERS = ["0215550101", "0215550102", "0215550103"]


def pools(policy: str, agents: list[str], **keys) -> dict:
    """Config overrides: one pool of NUMBERS for ``agents`` with ``policy``."""
    table = {"name": "sales", "numbers": NUMBERS, "agents": agents, "policy": policy, **keys}
    return {"clid": {"default": "0115550000", "pool": [], "pools": [table]}}


def presented(trunk) -> list[tuple[str, list[str]]]:
    """(From user, P-Asserted-Identity users) of every INVITE the trunk received, in order."""
    return [(sip_user(m.header("From")[0]), [sip_user(v) for v in m.header("P-Asserted-Identity")])
            for m in trunk.received("INVITE")]


def rest_calls(service, callees: list[str], **body) -> list[dict]:
    """One REST call per callee, each to its end before the next; the ended calls."""
    ended = []
    for callee in callees:
        r = service.post_call({"agent": "1001", "callee": callee, "outbound_id": "random", **body})
        assert r.status_code == 201, r.text
        final = service.wait_state(r.json()["id"], "ended", timeout=15)
        assert final["reason"] == "completed", final
        ended.append(final)
    return ended


def header_calls(sipp, callees: list[str], headers: list[list[str]]) -> None:
    """One call of the phone of agent 2001 per callee, with its headers, each to its end."""
    for callee, extra in zip(callees, headers):
        phone = sipp("phone", PHONE_PORT, uac_scenario(target=callee, from_user="2001",
                                                       headers=extra, talk_ms=300),
                     uac_target="127.0.0.1:5060", calls=1)
        assert phone.wait(timeout=20) == 0
        phone.stop()


def test_rest_calls_present_the_pool_numbers_in_round_robin_order(asterisk, make_service, sipp):
    service = make_service(pools("round_robin", ["10*"]))
    sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(talk_ms=300))
    calls = rest_calls(service, ["0215550100"] * 4)
    order = NUMBERS + NUMBERS[:1]
    assert [c["clid"] for c in calls] == order
    assert presented(trunk) == [(n, [n]) for n in order]
    # GET /click2dial/clids counts today's calls per number.
    body = service.http.get("/click2dial/clids").json()
    [sales] = body["pools"]
    assert (sales["name"], sales["policy"]) == ("sales", "round_robin")
    assert [(n["number"], n["calls_today"], n["answer_rate"], n["rested_until"])
            for n in sales["numbers"]] == [(NUMBERS[0], 2, 1.0, None), (NUMBERS[1], 1, 1.0, None),
                                           (NUMBERS[2], 1, 1.0, None)]


def test_rest_calls_under_sticky_give_a_returning_callee_its_number(asterisk, make_service, sipp):
    service = make_service(pools("sticky", ["1001"], fallback="round_robin"))
    sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(talk_ms=300))
    callees = ["0215550100", "0215550200", "0215550100", "0215550300", "0215550200"]
    calls = rest_calls(service, callees)
    # New callees in round-robin order; a returning one gets its number again.
    expected = [NUMBERS[0], NUMBERS[1], NUMBERS[0], NUMBERS[2], NUMBERS[1]]
    assert [c["clid"] for c in calls] == expected
    assert presented(trunk) == [(n, [n]) for n in expected]
    # An explicit outbound_id still wins.
    r = service.post_call({"agent": "1001", "callee": "0215550100", "outbound_id": "0215550199"})
    assert service.wait_state(r.json()["id"], "ended", timeout=15)["clid"] == "0215550199"
    assert presented(trunk)[-1] == ("0215550199", ["0215550199"])


def test_header_calls_with_random_or_no_outbound_id_draw_round_robin(asterisk, make_service, sipp):
    make_service(pools("round_robin", ["2001"]))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    # random, no header (the agent's pool, not [clid] default), random, an explicit number
    header_calls(sipp, ["0215550100"] * 4,
                 [[f"{OUT}: random"], [], [f"{OUT}: random"], [f"{OUT}: 0215550199"]])
    expected = NUMBERS + ["0215550199"]
    assert presented(trunk) == [(n, [n]) for n in expected]


def test_header_calls_under_sticky_give_a_returning_callee_its_number(asterisk, make_service, sipp):
    make_service(pools("sticky", ["2001"], fallback="round_robin"))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    callees = ["0215550100", "0215550200", "0215550200", "0215550100"]
    header_calls(sipp, callees, [[f"{OUT}: random"]] * 4)
    expected = [NUMBERS[0], NUMBERS[1], NUMBERS[1], NUMBERS[0]]
    assert presented(trunk) == [(n, [n]) for n in expected]


def test_fastagi_calls_with_random_or_no_outbound_id_draw_round_robin(asterisk, make_service, sipp):
    from tests.integration.test_agi import AGENT, dial, start_agi

    start_agi(make_service, pools("round_robin", [AGENT]))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    for headers in ([], [f"{OUT}: random"], []):   # no outbound ID: the agent's pool, not the default
        phone = dial(sipp, headers=headers, talk_ms=300)
        assert phone.wait(timeout=20) == 0
        phone.stop()
    assert presented(trunk) == [(n, [n]) for n in NUMBERS]


def carrier_refusing(number: str) -> str:
    """A trunk peer that answers every call but those from ``number``: 403 (a
    carrier that labelled it as spam)."""
    from testbed.sipp import _resp

    xml = uas_scenario(talk_ms=300)
    xml = xml.replace('    <action>\n', '    <action>\n      <ereg regexp="sip:' + number
                      + '@" search_in="hdr" header="From:" check_it="false" assign_to="refused"/>\n', 1)
    trying = _resp(100, "Trying", to_tag=False)
    xml = xml.replace(trying, trying + '  <nop next="refuse" test="refused"/>\n', 1)
    return xml.replace('  <label id="end"/>\n', '  <label id="refuse"/>\n' + _resp(403, "Forbidden")
                       + '  <recv request="ACK" next="end"/>\n  <label id="end"/>\n', 1)


def test_a_number_the_carrier_refuses_is_rested_and_no_longer_presented(asterisk, make_service, sipp):
    from platforma_c2d.store.clids import HEALTH_EVERY_S

    service = make_service(pools("round_robin", ["10*"], rest_s=300, health_min_calls=2,
                                 health_margin=0.5))
    sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, carrier_refusing(NUMBERS[0]))
    reasons = []
    for _ in range(6):
        r = service.post_call({"agent": "1001", "callee": "0215550100", "outbound_id": "random"})
        assert r.status_code == 201, r.text
        final = service.wait_state(r.json()["id"], "ended", timeout=15)
        reasons.append((final["clid"], final["reason"]))
    assert reasons == [(NUMBERS[0], "rejected"), (NUMBERS[1], "completed"), (NUMBERS[2], "completed")] * 2
    time.sleep(HEALTH_EVERY_S)   # the pool is judged again at its next draw
    later = rest_calls(service, ["0215550100"] * 3)
    assert [c["clid"] for c in later] == [NUMBERS[1], NUMBERS[2], NUMBERS[1]]
    assert [f for f, _ in presented(trunk)[6:]] == [c["clid"] for c in later]
    [sales] = service.http.get("/click2dial/clids").json()["pools"]
    refused = sales["numbers"][0]
    assert refused["rested_until"] and refused["calls_today"] == 2
    assert (sales["numbers"][1]["answer_rate"], sales["numbers"][1]["rested_until"]) == (1.0, None)
    metrics = service.http.get("/metrics").text
    assert f'c2d_clid_rested{{number="{NUMBERS[0]}",pool="sales"}} 1.0' in metrics
    assert 'c2d_clid_rests_total{pool="sales"} 1.0' in metrics
    assert f"CLID {NUMBERS[0]} of pool sales rested for 300 s" in service.log_path.read_text()
    # Still usable when asked for explicitly.
    r = service.post_call({"agent": "1001", "callee": "0215550100", "outbound_id": NUMBERS[0]})
    assert service.wait_state(r.json()["id"], "ended", timeout=15)["clid"] == NUMBERS[0]


def test_a_token_limited_to_agents_sees_only_the_pools_its_agents_draw_from(asterisk, make_service):
    """``GET /click2dial/clids`` through the real HTTP API: a token limited to
    some agents sees the pools (and so the numbers) those agents draw from
    through it — by agent, by token, or the pool for everyone else — and no
    other; a token without agents sees every pool."""
    import hashlib

    def sha(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    tokens = {"crm-a": ["1002"], "crm-b": ["3001"], "crm-c": ["4001"]}
    service = make_service({
        "auth": {"tokens_sha256": [sha("admin-token")],
                 "token": [{"sha256": sha(f"{name}-token"), "name": name, "agents": agents}
                           for name, agents in tokens.items()]},
        "clid": {"default": "0115550000", "pool": [], "pools": [
            {"name": "sales", "numbers": ["0215550101"], "agents": ["10*"]},
            {"name": "support", "numbers": ["0215550201"], "agents": ["2001"]},
            {"name": "crm", "numbers": ["0215550301"], "tokens": ["crm-b"]},
            {"name": "everyone", "numbers": ["0215550401"]}]}})

    def seen(token: str) -> list[tuple[str, list[str]]]:
        r = service.http.get("/click2dial/clids", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        return [(p["name"], [n["number"] for n in p["numbers"]]) for p in r.json()["pools"]]

    assert seen("crm-a-token") == [("sales", ["0215550101"])]
    assert seen("crm-b-token") == [("crm", ["0215550301"])]
    assert seen("crm-c-token") == [("everyone", ["0215550401"])]
    assert [name for name, _ in seen("admin-token")] == ["sales", "support", "crm", "everyone"]
