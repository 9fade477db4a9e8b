"""A carrier that limits the call rate (SPEC §3.8, field report C38), against the real Asterisk.

The trunk is a SIPp carrier that refuses, with ``503`` and ``Retry-After``,
any INVITE that comes sooner than its limit after the last one it took
(``testbed/carrier.py``).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import sqlalchemy as sa

from platforma_c2d.store.journal import call_events

from testbed.carrier import carrier_scenario
from testbed.sipp import uac_scenario, uas_scenario
from testbed.wire import InviteTap
from tests.integration.test_check_modules import run_check

AGENT_PORT, TRUNK_PORT, PHONE_PORT = 5071, 5070, 5081


def _place_at_once(service, count: int) -> list[str]:
    """POST ``count`` calls of agent 1001 concurrently (callees 0215550101, ...); their ids."""
    def post(i: int) -> str:
        r = service.post_call({"agent": "1001", "callee": f"02155501{i + 1:02d}",
                               "outbound_id": "0215550199", "call_ref": f"burst-{i}"})
        assert r.status_code == 201, r.text
        return r.json()["id"]
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(post, range(count)))


def _place_one_after_the_other(service) -> list[str]:
    """Place a call of agent 1001 to 0215550101, wait until it has ended, then
    place one to 0215550102 (its leg reaches the carrier a few seconds after
    the first's); both ids."""
    [first] = _place_at_once(service, 1)
    _wait_ended(service, [first], timeout=15)
    r = service.post_call({"agent": "1001", "callee": "0215550102",
                           "outbound_id": "0215550199", "call_ref": "burst-1"})
    assert r.status_code == 201, r.text
    return [first, r.json()["id"]]


def _wait_ended(service, ids: list[str], timeout: float) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        calls = {i: service.get_call(i) for i in ids}
        if all(c["state"] == "ended" for c in calls.values()) or time.monotonic() > deadline:
            return calls
        time.sleep(0.2)


def _read(service, query):
    """Run ``query`` on the service's journal (its SQLite file or its PostgreSQL database)."""
    engine = sa.create_engine(service.store_url)
    try:
        with engine.connect() as db:
            return db.execute(query).all()
    finally:
        engine.dispose()


def _details(service, call_id: str) -> list[str]:
    """What the journal says happened to a call, one line per change."""
    return [row[0] for row in _read(service, sa.select(call_events.c.detail)
                                    .where(call_events.c.call_id == call_id).order_by(call_events.c.id))]


def _dialled_at(service, call_id: str) -> int:
    """The place of the call's "agent answered; dialling the callee" record in the
    journal (records are written in the order the engine made them)."""
    return _read(service, sa.select(sa.func.min(call_events.c.id))
                 .where(call_events.c.call_id == call_id, call_events.c.state == "dialing_callee"))[0][0]


def _asked_within(service, ids: list[str]) -> float:
    """Seconds between the first and the last "agent answered; dialling the
    callee" record of the calls ``ids`` (each leg asks for its slot then)."""
    rows = _read(service, sa.select(call_events.c.at).where(
        call_events.c.call_id.in_(ids), call_events.c.state == "dialing_callee",
        call_events.c.detail.like("agent answered%")))
    at = sorted(datetime.fromisoformat(r[0].replace("Z", "+00:00")) for r in rows)
    return (at[-1] - at[0]).total_seconds()


def test_a_burst_of_calls_goes_to_the_carrier_at_its_rate_in_order_and_bounded(asterisk, make_service, sipp):
    # 20 calls within a second or two; the carrier takes 4 INVITEs in any
    # second; we send at most 1 leg a second and let a leg wait at most 4 s.
    rate, max_wait = 1, 4.0
    sipp("agent", AGENT_PORT, uas_scenario())
    # The callees talk 2 s: bridged before they hang up, also when a loaded
    # machine takes a second or more to bridge them.
    trunk = sipp("trunk", TRUNK_PORT, carrier_scenario(limit=4, window_ms=1000, talk_ms=2000))
    service = make_service({"trunk": {"max_calls_per_second": rate, "max_wait_s": max_wait},
                            "limits": {"max_active_calls_per_agent": 30}})
    # The INVITEs as they reached the carrier's port, timed by the kernel (SIPp's
    # own log stamps a message when its loop gets to it, late by a varying lag).
    with InviteTap(TRUNK_PORT) as tap:
        ids = _place_at_once(service, 20)
        calls = _wait_ended(service, ids, timeout=60)
    assert all(c["state"] == "ended" for c in calls.values()), calls
    # A burst: the legs asked for the trunk far faster than it may take them
    # (20 at 1/s: 20 s), even on a loaded machine that placed them slowly.
    asked_within = _asked_within(service, ids)
    assert asked_within < len(ids) / rate / 2, asked_within

    # The carrier never had to refuse anything, and never saw two INVITEs closer
    # than the configured rate allows, however Asterisk delayed the legs it was
    # handed (a leg's slot counts from the previous leg's Dial of the trunk).
    assert not [m for m in trunk.sent() if m.status == 503]
    invites = tap.invites()
    assert len(invites) == len(trunk.initial_invites()) >= 2, (invites, trunk.initial_invites())
    early = _wire_gaps_too_short(invites, rate)
    assert not early, (early, [i.time for i in invites])
    # In order: the legs reached the carrier in the order the agents answered.
    by_callee = {c["callee"]: i for i, c in calls.items()}
    sent = [by_callee[i.request_uri.split("sip:", 1)[1].split("@", 1)[0]] for i in invites]
    assert sent == sorted(sent, key=lambda i: _dialled_at(service, i))
    # Bounded: what could not go out within 4 s of asking ended unavailable,
    # saying why (a leg that asked later may still fit in its own 4 s).
    reasons = {i: c["reason"] for i, c in calls.items()}
    refused = [i for i in ids if i not in sent]
    assert {reasons[i] for i in sent} == {"completed"}, reasons
    assert refused and {reasons[i] for i in refused} == {"callee_unavailable"}, reasons
    # At most 4 s of slots at 1/s after the first leg (5), plus the slots of those
    # who asked later (the agents' answers spread over a loaded machine's second
    # or two). How many fewer went out depends on how fast Asterisk dials: each
    # slot comes one interval after the last leg's Dial of the trunk was seen,
    # a few ms after its slot on a quiet machine, a second or more on a loaded one.
    slots = 1 + rate * max_wait
    assert len(sent) <= slots + 1 + rate * asked_within, (len(sent), asked_within)
    for i in refused:
        text = " ".join(_details(service, i))
        assert "max_calls_per_second" in text and "tone:congestion" in text, text
    metrics = service.http.get("/metrics").text
    assert "c2d_trunk_legs_waiting 0.0" in metrics


def _wire_gaps_too_short(invites, rate: float) -> list:
    return [(a.request_uri, b.request_uri, round(b.time - a.time, 4))
            for a, b in zip(invites, invites[1:]) if b.time - a.time < 1 / rate]


def three_calls_paced_on_the_wire(make_service, sipp, dial: dict) -> None:
    """Three REST calls placed at once at 2/s (``dial``: the service's ``[dial]``):
    all completed, their INVITEs at least 0.5 s apart on the wire, no 503."""
    rate = 2
    sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, carrier_scenario(limit=4, window_ms=1000, talk_ms=1000))
    service = make_service({"dial": dial,
                            "trunk": {"max_calls_per_second": rate, "max_wait_s": 10.0},
                            "limits": {"max_active_calls_per_agent": 5}})
    with InviteTap(TRUNK_PORT) as tap:
        ids = _place_at_once(service, 3)
        calls = _wait_ended(service, ids, timeout=40)
    assert {c["reason"] for c in calls.values()} == {"completed"}, calls
    invites = tap.invites()
    assert len(invites) == len(trunk.initial_invites()) == 3, (invites, trunk.initial_invites())
    assert not _wire_gaps_too_short(invites, rate), [i.time for i in invites]
    assert not [m for m in trunk.sent() if m.status == 503]


def test_legs_dialled_straight_to_the_trunk_are_paced_on_the_wire_too(asterisk, make_service, sipp):
    # A dialplan without our trunk-leg context (an administrator who has not
    # merged it): the callee legs are originated straight to the trunk, and
    # the pacer counts from each one's own Dial. Three calls at once at 2/s.
    three_calls_paced_on_the_wire(make_service, sipp, {"trunk_leg_context": ""})


def test_header_calls_legs_are_paced_on_the_wire_too(asterisk, make_service, sipp):
    # Three header calls (SPEC §4) from the phone of agent 2001 at once: their
    # callee legs take the trunk's slots like a REST call's, at 2/s on the wire.
    rate = 2
    trunk = sipp("trunk", TRUNK_PORT, carrier_scenario(limit=4, window_ms=1000, talk_ms=1000))
    service = make_service({"trunk": {"max_calls_per_second": rate, "max_wait_s": 10.0},
                            "limits": {"max_active_calls_per_agent": 5}})
    with InviteTap(TRUNK_PORT) as tap:
        phone = sipp("phone", PHONE_PORT, uac_scenario(
            target="0215550100", from_user="2001", headers=["X-Platforma-Outbound-ID: 0215550199"],
            talk_ms=1500), uac_target="127.0.0.1:5060", calls=3, rate=100)
        assert phone.wait(timeout=40) == 0
    invites = tap.invites()
    assert len(invites) == len(trunk.initial_invites()) == 3, (invites, trunk.initial_invites())
    assert not _wire_gaps_too_short(invites, rate), [i.time for i in invites]
    assert not [m for m in trunk.sent() if m.status == 503]
    calls = service.http.get("/click2dial/calls").json()
    assert sorted((c["origin"], c["reason"]) for c in calls["calls"]) == [("webrtc", "completed")] * 3, calls


def test_a_carrier_503_holds_the_trunk_and_is_never_busy_or_no_answer(asterisk, make_service, sipp):
    # The carrier takes one INVITE in any 10 s and asks for 10 s after a refusal.
    # The second call is placed when the first has ended (two INVITEs reaching
    # the SIPp carrier in one instant could both pass its window test), well
    # inside the window even on a loaded machine; the hold is as long as the
    # window, so that the leg after the hold is taken.
    sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, carrier_scenario(limit=1, window_ms=10000, retry_after_s=10, talk_ms=500))
    service = make_service({"trunk": {"hold_after_503_s": 10.0, "max_wait_s": 14.0},
                            "limits": {"max_active_calls_per_agent": 5}})
    first, second = _place_one_after_the_other(service)
    calls = _wait_ended(service, [first, second], timeout=20)
    assert calls[first]["reason"] == "completed", calls
    assert calls[second]["reason"] == "callee_unavailable", calls
    text = " ".join(_details(service, second))
    assert "refused by the carrier (SIP 503" in text and "tone:congestion" in text, text
    [refusal] = [m for m in trunk.sent() if m.status == 503]

    # A new call right away: its leg waits for the hold, then the carrier takes it.
    [third] = _place_at_once(service, 1)
    assert _wait_ended(service, [third], timeout=30)[third]["reason"] == "completed"
    last_invite = trunk.received("INVITE")[-1]
    assert last_invite.time - refusal.time >= 10.0, (last_invite.time - refusal.time)
    assert len([m for m in trunk.sent() if m.status == 503]) == 1
    assert 'c2d_trunk_refused_total{sip_code="503"} 1.0' in service.http.get("/metrics").text


HEP_ON = """[general]
enabled = yes
capture_address = 127.0.0.1:9060
capture_id = 1
uuid_type = call-id
"""


@pytest.fixture
def hep_capture(asterisk):
    """Asterisk's HEP capture turned on as docs/configuration.md says (hep.conf, then
    reload res_hep and load res_hep_pjsip); turned off again after the test."""
    conf = asterisk.root / "etc/asterisk/hep.conf"
    saved = conf.read_text() if conf.exists() else None
    conf.write_text(HEP_ON)
    asterisk.cli("module reload res_hep.so")
    asterisk.cli("module load res_hep_pjsip.so")
    assert "res_hep_pjsip.so" in asterisk.cli("module show like res_hep_pjsip")
    yield "127.0.0.1:9060"
    asterisk.cli("module unload res_hep_pjsip.so")
    if saved is None:
        conf.unlink()
    else:
        conf.write_text(saved)
    asterisk.cli("module reload res_hep.so")


@pytest.mark.admin_configs
def test_a_carrier_503_holds_the_trunk_for_its_own_retry_after(asterisk, make_service, sipp, hep_capture):
    # The carrier takes one INVITE in any 10 s and asks for 11 s after a
    # refusal; our fallback hold is 40 s, longer than a leg may wait (15 s):
    # only the carrier's own Retry-After lets the next call through. (The
    # second call is placed when the first has ended, as above.)
    sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, carrier_scenario(limit=1, window_ms=10000, retry_after_s=11, talk_ms=500))
    service = make_service({"trunk": {"hold_after_503_s": 40.0, "max_wait_s": 15.0,
                                      "hep_listen": hep_capture},
                            "limits": {"max_active_calls_per_agent": 5}})
    first, second = _place_one_after_the_other(service)
    calls = _wait_ended(service, [first, second], timeout=20)
    assert calls[first]["reason"] == "completed", calls
    assert calls[second]["reason"] == "callee_unavailable", calls
    text = " ".join(_details(service, second))
    assert "no new leg on the trunk for 11 s (the carrier's Retry-After)" in text, text
    [refusal] = [m for m in trunk.sent() if m.status == 503]

    [third] = _place_at_once(service, 1)
    assert _wait_ended(service, [third], timeout=30)[third]["reason"] == "completed"
    waited = trunk.received("INVITE")[-1].time - refusal.time
    assert 11.0 <= waited < 25.0, waited
    assert len([m for m in trunk.sent() if m.status == 503]) == 1
    # check sees the capture running for this config.
    res = run_check(service)
    assert "ok   trunk: Asterisk's SIP capture (res_hep_pjsip) runs" in res.stdout, res.stdout


def test_a_carrier_503_to_an_external_agents_leg_is_the_carriers_and_holds_the_trunk(
        asterisk, make_service, sipp):
    # The agent is a number, so its leg leaves through the trunk, where the
    # carrier refuses it: the call ends agent_unavailable (never busy or no
    # answer), the callee is never dialled, and the trunk is held.
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(reject_code=503))
    service = make_service({"trunk": {"hold_after_503_s": 3.0}})
    r = service.post_call({"agent": "0215550111", "callee": "0215550100", "outbound_id": "0215550199",
                           "call_ref": "ext-503"})
    assert r.status_code == 201, r.text
    final = service.wait_state(r.json()["id"], "ended", timeout=15)
    assert final["reason"] == "agent_unavailable", final
    text = " ".join(_details(service, final["id"]))
    assert "agent leg refused by the carrier (SIP 503" in text and "for 3 s" in text, text
    assert [m.first_line.split()[1].split("@")[0] for m in trunk.initial_invites()] == ["sip:0215550111"]
    assert 'c2d_trunk_refused_total{sip_code="503"} 1.0' in service.http.get("/metrics").text
