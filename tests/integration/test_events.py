"""Call events out (SPEC §10) through the real Asterisk: signed webhooks received by a real
HTTP receiver started here, and the event stream with resume."""

from __future__ import annotations

import json
import time

import httpx

from platforma_c2d.webhooks.signature import verify
from testbed.receiver import WebhookReceiver
from testbed.service import free_port
from testbed.sipp import uac_scenario, uas_scenario
from tests.integration.test_agi import start_agi_named

AGENT_PORT, TRUNK_PORT, PHONE_PORT, AGI_PHONE_PORT = 5071, 5070, 5081, 5091
SECRET = "s3cret-of-the-crm"
CALL = {"agent": "1001", "callee": "0215550100", "outbound_id": "0215550199", "call_ref": "ev-1"}


def webhooks(*endpoints: tuple[str, str], **more) -> dict:
    """``[webhooks]`` overrides: endpoints (name, url) signed with SECRET."""
    return {"webhooks": {"endpoints": [{"name": n, "url": u, "secret": SECRET} for n, u in endpoints],
                         **more}}


def types_by_call(events) -> dict[str, list[str]]:
    """Event types per call id, in the order received."""
    out: dict[str, list[str]] = {}
    for _h, _b, ev in events:
        out.setdefault(ev["call"]["id"], []).append(ev["type"].removeprefix("call."))
    return out


def assert_signed_and_ordered(events) -> None:
    """Every delivery carries its id and a valid signature; ids increase within each call."""
    last: dict[str, int] = {}
    for headers, body, ev in events:
        assert headers["x-platforma-event-id"] == str(ev["id"])
        assert verify(SECRET, body, headers["x-platforma-signature"]), headers
        assert not verify("another secret", body, headers["x-platforma-signature"])
        assert ev["id"] > last.get(ev["call"]["id"], 0), "a call's events out of order"
        last[ev["call"]["id"]] = ev["id"]


def stored_events(service, **params) -> list[dict]:
    """Every stored event, from the JSON page form."""
    r = service.http.get("/click2dial/events", params={"limit": 500, **params},
                         headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    return r.json()["events"]


def read_stream(service, count: int, last_event_id: str | None = None, timeout: float = 30.0):
    """Open the SSE stream, read ``count`` events, disconnect; returns [(id, event)]."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    got, fields = [], {}
    with httpx.Client(base_url=service.url, timeout=timeout) as client:
        with client.stream("GET", "/click2dial/events", headers=headers) as resp:
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
            for line in resp.iter_lines():
                if line.startswith(":") or line.startswith("retry:"):
                    continue
                if line == "":
                    if "id" in fields:
                        got.append((fields["id"], json.loads(fields["data"])))
                        fields = {}
                        if len(got) == count:
                            break
                    continue
                key, _, value = line.partition(": ")
                fields[key] = value
    return got


def run_rest_calls(service, sipp) -> dict[str, str]:
    """A completed, a callee-busy and a cancelled REST call, one after the other; {kind: call id}."""
    ids = {}
    for kind, trunk_scenario in (("completed", uas_scenario(ring_ms=200, talk_ms=800)),
                                 ("busy", uas_scenario(ring_ms=100, reject_code=486)),
                                 ("cancelled", uas_scenario(answer=False))):
        agent = sipp("agent", AGENT_PORT, uas_scenario())
        trunk = sipp("trunk", TRUNK_PORT, trunk_scenario)
        r = service.post_call({**CALL, "call_ref": kind})
        assert r.status_code == 201, r.text
        call_id = ids[kind] = r.json()["id"]
        if kind == "cancelled":
            assert service.wait_state(call_id, "dialing_callee")["state"] == "dialing_callee"
            trunk.wait_for(lambda m: m.direction == "received" and m.method == "INVITE")
            assert service.http.delete(f"/click2dial/calls/{call_id}").status_code == 200
        assert service.wait_state(call_id, "ended", timeout=20)["state"] == "ended"
        agent.stop()
        trunk.stop()
    return ids


def test_events_of_rest_webrtc_and_agi_calls_arrive_signed_in_order_and_the_stream_resumes(
        asterisk, make_service, sipp):
    receiver = WebhookReceiver(free_port()).start()
    try:
        service = make_service(webhooks(("crm", receiver.url)), name="shared")
        start_agi_named(make_service, "shared")          # one store for serve and agi
        ids = run_rest_calls(service, sipp)
        # Half-way, a stream client reads what is there, then goes away.
        first = read_stream(service, 5)
        # A WebRTC call (browser stand-in of agent 2001) and an AGI call (endpoint 3001).
        trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200))
        phone = sipp("phone", PHONE_PORT, uac_scenario(target="0215550100", from_user="2001", talk_ms=800),
                     uac_target="127.0.0.1:5060", calls=1)
        assert phone.wait(timeout=20) == 0
        trunk.stop()
        trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200))
        phone = sipp("agiphone", AGI_PHONE_PORT,
                     uac_scenario(target="0215550100", from_user="3001", talk_ms=800),
                     uac_target="127.0.0.1:5060", calls=1)
        assert phone.wait(timeout=20) == 0

        expected = {"completed": ["dialing_agent", "dialing_callee", "connected", "ended"],
                    "busy": ["dialing_agent", "dialing_callee", "ended"],
                    "cancelled": ["dialing_agent", "dialing_callee", "ended"],
                    "webrtc": ["dialing_callee", "connected", "ended"],
                    "agi": ["dialing_callee", "ended"]}
        total = sum(map(len, expected.values()))
        got = receiver.wait(lambda evs: len(evs) >= total, timeout=30)
        time.sleep(0.5)
        got = receiver.events()
        assert len(got) == total, types_by_call(got)     # each event once (nothing failed here)
        assert_signed_and_ordered(got)
        by_call = types_by_call(got)
        for kind in ("completed", "busy", "cancelled"):
            assert by_call[ids[kind]] == expected[kind], kind
        finals = {ev["call"]["id"]: ev["call"] for _h, _b, ev in got if ev["type"] == "call.ended"}
        assert [finals[ids[k]]["reason"] for k in ("completed", "busy", "cancelled")] == \
            ["completed", "callee_busy", "cancelled"]
        others = {finals[c]["origin"]: c for c in by_call if c not in ids.values()}
        assert by_call[others["webrtc"]] == expected["webrtc"]
        assert by_call[others["agi"]] == expected["agi"]
        assert finals[others["webrtc"]]["reason"] == finals[others["agi"]]["reason"] == "completed"
        # The event's call is the resource the API returns.
        assert finals[ids["completed"]] == service.get_call(ids["completed"])

        # The stream client comes back with Last-Event-ID: the rest, nothing twice, nothing missed.
        stored = stored_events(service)
        assert [e["id"] for e in stored] == sorted({e["id"] for _h, _b, e in got})
        rest = read_stream(service, len(stored) - len(first), last_event_id=first[-1][0])
        streamed = first + rest
        assert [int(i) for i, _ev in streamed] == [e["id"] for e in stored]
        assert [ev for _i, ev in streamed] == stored
        # Filters: one call; one agent.
        assert [e["type"] for e in stored_events(service, call_id=ids["busy"])] == \
            ["call." + t for t in expected["busy"]]
        assert {e["call"]["agent"] for e in stored_events(service, agent="2001")} == {"2001"}
        metrics = service.http.get("/metrics").text
        assert f'c2d_webhook_delivered_total{{endpoint="crm"}} {float(total)}' in metrics
    finally:
        receiver.stop()


def agent_busy_call(service, sipp, ref: str) -> str:
    """A REST call refused by the agent's phone (486): two events, quickly."""
    agent = sipp("agent", AGENT_PORT, uas_scenario(ring_ms=50, reject_code=486))
    r = service.post_call({**CALL, "call_ref": ref})
    assert r.status_code == 201, r.text
    assert service.wait_state(r.json()["id"], "ended")["reason"] == "agent_busy"
    agent.stop()
    return r.json()["id"]


def test_a_receiver_down_for_a_while_gets_every_event_afterwards_in_order(asterisk, make_service, sipp):
    receiver = WebhookReceiver(free_port())           # not started: the port is closed
    service = make_service(webhooks(("crm", receiver.url)))
    try:
        calls = [agent_busy_call(service, sipp, f"down-{i}") for i in range(2)]
        time.sleep(3)                                  # a few failed attempts each
        assert "c2d_webhook_retries_total" in service.http.get("/metrics").text
        health = service.http.get("/healthz").json()
        assert health["webhooks"]["pending"] == 4 and health["webhooks"]["oldest_pending_s"] > 2
        receiver.start()
        got = receiver.wait(lambda evs: len(evs) >= 4, timeout=30)
        assert_signed_and_ordered(got)
        assert {c: types for c, types in types_by_call(got).items()} == \
            {c: ["dialing_agent", "ended"] for c in calls}
        # A 2xx is recorded at the worker's next pass (every 0.2 s), not at once.
        deadline = time.monotonic() + 5
        while service.http.get("/healthz").json()["webhooks"]["pending"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert service.http.get("/healthz").json()["webhooks"]["pending"] == 0
    finally:
        receiver.stop()


def test_deliveries_pending_at_a_sigkill_are_delivered_after_the_restart(asterisk, make_service, sipp):
    receiver = WebhookReceiver(free_port()).start()
    receiver.status = 503                             # refuses: every delivery stays pending
    try:
        service = make_service(webhooks(("crm", receiver.url)))
        call_id = agent_busy_call(service, sipp, "kill-1")
        deadline = time.monotonic() + 10
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert receiver.received, "no attempt before the kill"
        service.kill()
        receiver.status = 200
        service.start()
        got = receiver.wait(lambda evs: len(evs) >= 2, timeout=30)
        assert_signed_and_ordered(got)
        assert types_by_call(got) == {call_id: ["dialing_agent", "ended"]}
    finally:
        receiver.stop()


def test_a_receiver_that_never_answers_delays_neither_calls_nor_other_receivers(
        asterisk, make_service, sipp):
    stuck, good = WebhookReceiver(free_port()).start(), WebhookReceiver(free_port()).start()
    stuck.hang = True
    try:
        service = make_service(webhooks(("stuck", stuck.url), ("good", good.url), timeout_s=60.0))
        agent = sipp("agent", AGENT_PORT, uas_scenario())
        trunk = sipp("trunk", TRUNK_PORT, uas_scenario(talk_ms=500))
        # The stuck receiver holds a delivery for 60 s: a POST that waited for it would time out.
        r = service.post_call({**CALL, "call_ref": "stuck-1"}, timeout=10)
        assert r.status_code == 201, r.text
        call_id = r.json()["id"]
        assert service.wait_state(call_id, "ended", timeout=15)["reason"] == "completed"
        got = good.wait(lambda evs: len(evs) >= 4, timeout=5)
        assert types_by_call(got) == {call_id: ["dialing_agent", "dialing_callee", "connected", "ended"]}
        stored = {e["id"]: e for e in stored_events(service)}
        for _h, _b, ev in got:
            assert ev == stored[ev["id"]]
        agent.stop()
        trunk.stop()
    finally:
        stuck.stop()
        good.stop()


def test_a_calls_own_status_callback_gets_its_events_signed_with_the_callback_secret(
        asterisk, make_service, sipp):
    receiver = WebhookReceiver(free_port()).start()
    try:
        service = make_service({"webhooks": {"allowed_url_prefixes": [f"http://127.0.0.1:{receiver.port}/"],
                                             "callback_secret": "cb-secret"}})
        refused = service.post_call({**CALL, "status_callback": "http://127.0.0.1:9/internal"})
        assert refused.status_code == 400, refused.text
        assert "status_callback" in refused.json()["details"]["fields"]
        assert service.http.get("/click2dial/calls").json()["calls"] == []      # nothing placed
        agent = sipp("agent", AGENT_PORT, uas_scenario(ring_ms=50, reject_code=486))
        r = service.post_call({**CALL, "status_callback": receiver.url + "?call=1"})
        assert r.status_code == 201, r.text
        got = receiver.wait(lambda evs: len(evs) >= 2, timeout=20)
        assert [e["type"] for *_x, e in got] == ["call.dialing_agent", "call.ended"]
        assert all(verify("cb-secret", b, h["x-platforma-signature"]) for h, b, _e in got)
        assert got[-1][2]["call"]["reason"] == "agent_busy" and got[-1][2]["call"]["id"] == r.json()["id"]
        agent.stop()
    finally:
        receiver.stop()


def test_a_stream_whose_client_went_away_gives_its_place_back_at_once(asterisk, make_service):
    """With ``[webhooks] max_streams = 1``, a client that opens the stream and
    goes away leaves room for the next within seconds (it held its place,
    and an HTTP thread, until a keep-alive failed: ~45 s)."""
    service = make_service({"webhooks": {"max_streams": 1}})
    accept = {"Accept": "text/event-stream"}
    with httpx.Client(base_url=service.url, timeout=10) as client:
        with client.stream("GET", "/click2dial/events", headers=accept) as resp:
            assert resp.status_code == 200
            chunks = resp.iter_raw()   # kept: a dropped iterator closes the connection
            assert next(chunks).startswith(b"retry:")
            refused = client.get("/click2dial/events", headers=accept)
            assert refused.status_code == 503 and refused.json()["error"] == "too-many-streams", refused.text
    gone_at, answers = time.monotonic(), []
    with httpx.Client(base_url=service.url, timeout=10) as client:
        while time.monotonic() - gone_at < 5:
            with client.stream("GET", "/click2dial/events", headers=accept) as resp:
                answers.append(resp.status_code)
                if resp.status_code == 200:
                    break
            time.sleep(0.2)
    assert answers[-1] == 200, answers
