"""SPEC §3.7: the trunk never sees the agent's extension, whatever the trunk's
own settings are.

Each test lets the call stay connected for a while, so that whatever Asterisk
sends after the bridge (connected-line updates, direct-media re-INVITEs,
UPDATEs) reaches the trunk peer, and then reads every message the trunk
received. With the administrator-style configs (C2D_BENCH_CONFIGS=admin) the
trunk endpoint has Asterisk's defaults (send_connected_line=yes,
direct_media=yes) plus send_pai=yes and trust_id_outbound=yes; with ours it
has our values. Both must hold.
"""

from __future__ import annotations

import time

import pytest

from testbed.sipmessages import identities
from testbed.sipp import uac_scenario, uas_scenario

pytestmark = pytest.mark.admin_configs

TRUNK_PORT, AGENT_PORT, PHONE_PORT = 5070, 5071, 5081
CALLEE, CLID = "0215550100", "0215550199"


def dialogs(peer) -> dict[str, list]:
    """The messages a peer received, grouped by Call-ID."""
    out: dict[str, list] = {}
    for msg in peer.received():
        out.setdefault(msg.header("Call-ID")[0], []).append(msg)
    return out


def strangers(messages, dialled: str) -> list[tuple[str, str, str]]:
    """Identities in ``messages`` other than the number dialled, the CLID and
    Asterisk's own contact: (first line, header, value)."""
    allowed = {dialled, CLID, "asterisk", ""}
    return [(m.first_line, where, value) for m in messages
            for where, value in identities(m.text) if value not in allowed]


def assert_trunk_names_only_callee_and_clid(trunk, dialled: str = CALLEE) -> None:
    """Every message of the dialog to ``dialled`` names only it and the CLID;
    re-INVITEs and UPDATEs included (all received messages are read)."""
    calls = {cid: msgs for cid, msgs in dialogs(trunk).items()
             if msgs[0].method == "INVITE" and msgs[0].first_line.startswith(f"INVITE sip:{dialled}@")}
    assert len(calls) == 1, f"one dialog to {dialled} expected: {list(calls)}"
    messages = next(iter(calls.values()))
    assert any(m.method == "BYE" for m in messages) or any(m.method == "ACK" for m in messages)
    assert strangers(messages, dialled) == []


def wait_bridged(asterisk, timeout: float = 10) -> dict:
    """The call's bridge (``c2d-…``; a callee leg's own Dial has another) once
    it holds two channels (``GET /bridges``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ours = [b for b in asterisk.bridges() if b["id"].startswith("c2d-")]
        if len(ours) == 1 and len(ours[0]["channels"]) == 2:
            return ours[0]
        time.sleep(0.1)
    raise AssertionError(f"no call bridge of two channels: {asterisk.bridges()}")


def assert_relayed_not_mixed(asterisk) -> None:
    """The call's bridge relays frames between its two legs (``simple_bridge``):
    not Asterisk's conference mixer, whose cost grows with every second of
    every call (docs/decisions/0015)."""
    bridge = wait_bridged(asterisk)
    assert bridge["technology"] == "simple_bridge", bridge


def test_rest_call_trunk_never_sees_the_agent(asterisk, service, sipp):
    sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200, talk_ms=2500))
    r = service.post_call({"agent": "1001", "callee": CALLEE, "outbound_id": CLID, "call_ref": "id-rest"})
    assert r.status_code == 201, r.text
    assert_relayed_not_mixed(asterisk)
    final = service.wait_state(r.json()["id"], "ended", timeout=20)
    assert final["reason"] == "completed" and final["duration_s"] >= 2, final
    assert_trunk_names_only_callee_and_clid(trunk)


def test_header_call_trunk_never_sees_the_agent(asterisk, service, sipp):
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200, talk_ms=2500))
    phone = sipp("phone", PHONE_PORT,
                 uac_scenario(target=CALLEE, from_user="2001", wait_bye=True,
                              headers=[f"X-Platforma-Outbound-ID: {CLID}", "X-Platforma-Call-Ref: id-hdr"]),
                 uac_target="127.0.0.1:5060", calls=1)
    assert_relayed_not_mixed(asterisk)
    assert phone.wait(timeout=25) == 0, phone.messages()
    calls = service.http.get("/click2dial/calls").json()["calls"]
    assert len(calls) == 1
    final = service.wait_state(calls[0]["id"], "ended")
    assert final["reason"] == "completed" and final["duration_s"] >= 2, final
    assert_trunk_names_only_callee_and_clid(trunk)


def test_external_agent_trunk_legs_name_only_their_own_party(asterisk, service, sipp):
    """The agent's leg and the callee's leg both go through the trunk: the
    callee's dialog never names the agent, the agent's never the callee."""
    agent_number = "0215550111"
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(talk_ms=2500))
    r = service.post_call({"agent": agent_number, "callee": CALLEE, "outbound_id": CLID,
                           "call_ref": "id-ext"})
    assert r.status_code == 201, r.text
    assert_relayed_not_mixed(asterisk)
    final = service.wait_state(r.json()["id"], "ended", timeout=20)
    assert final["reason"] == "completed", final
    assert_trunk_names_only_callee_and_clid(trunk, CALLEE)
    assert_trunk_names_only_callee_and_clid(trunk, agent_number)


def test_a_phones_own_identity_headers_never_reach_the_trunk(asterisk, service, sipp):
    """Caller-ID spoofing from a phone: the INVITE's From display name ("Bank
    Security") and identity headers of its own (P-Asserted-Identity,
    Remote-Party-ID, P-Preferred-Identity naming 0800123456) are the caller's
    text; the callee sees only the CLID."""
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200, talk_ms=1500))
    forged = '"Bank Security" <sip:0800123456@bank.example.test>'
    scenario = uac_scenario(target=CALLEE, from_user="2001", wait_bye=True,
                            headers=[f"X-Platforma-Outbound-ID: {CLID}", "X-Platforma-Call-Ref: id-name",
                                     f"P-Asserted-Identity: {forged}", f"P-Preferred-Identity: {forged}",
                                     f"Remote-Party-ID: {forged};party=calling;privacy=off;screen=yes"])
    phone = sipp("phone", PHONE_PORT, scenario.replace("From: <sip:2001@", 'From: "Bank Security" <sip:2001@'),
                 uac_target="127.0.0.1:5060", calls=1)
    assert phone.wait(timeout=25) == 0, phone.messages()
    final = service.wait_state(service.http.get("/click2dial/calls").json()["calls"][0]["id"], "ended")
    assert final["reason"] == "completed", final
    assert_trunk_names_only_callee_and_clid(trunk)


def test_rest_call_bridged_in_the_dialplan_trunk_never_sees_the_agent(asterisk, make_service, sipp):
    """``[dial] bridging = "dialplan"`` (docs/decisions/0018): Asterisk's Dial() in
    [c2d-native-call] dials and bridges the callee; the trunk's bridge peer is
    the agent leg's Local half, which presents the CLID, never the phone (with
    direct_media=yes and send_connected_line=yes on the administrator's set)."""
    service = make_service({"dial": {"bridging": "dialplan"}})
    sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200, talk_ms=2500))
    r = service.post_call({"agent": "1001", "callee": CALLEE, "outbound_id": CLID, "call_ref": "id-native"})
    assert r.status_code == 201, r.text
    call_id = r.json()["id"]
    assert service.wait_state(call_id, "connected")["state"] == "connected"
    [leg] = [c for c in asterisk.channels() if c["id"] == f"c2d-{call_id}-agent"]
    assert leg["dialplan"]["context"] == "c2d-native-call", leg       # bridged by Asterisk, not in Stasis
    assert not [b for b in asterisk.bridges() if b["id"].startswith("c2d-")]
    final = service.wait_state(call_id, "ended", timeout=20)
    assert final["reason"] == "completed" and final["duration_s"] >= 2, final
    assert_trunk_names_only_callee_and_clid(trunk)
