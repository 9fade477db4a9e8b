"""Call events out (SPEC §10) without Asterisk: the signature, the [webhooks] config, a call's
status_callback, the delivery worker against a real local receiver, and GET /click2dial/events."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from platforma_c2d.calls.model import Call, Origin, Reason, State, new_call_id
from platforma_c2d.config import ConfigError, WebhooksConfig, loads_config
from platforma_c2d.http import create_app
from platforma_c2d.metrics import Metrics
from platforma_c2d.runtime import Runtime
from platforma_c2d.store.journal import Journal
from platforma_c2d.store.outbox import PENDING, Outbox, deliveries
from platforma_c2d.webhooks.callback import check_status_callback
from platforma_c2d.webhooks.delivery import WebhookDelivery, backoff_s
from platforma_c2d.webhooks.signature import sign, verify
from platforma_c2d.config import WebhookEndpoint
from testbed.receiver import WebhookReceiver
from testbed.service import free_port

TOKEN = "unit-test-token"


# --- the signature ------------------------------------------------------------------
def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"id":1}'
    header = sign("k", body, t=1700000000)
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert verify("k", body, header, now=1700000100)
    assert not verify("k", body + b" ", header, now=1700000100)        # body changed
    assert not verify("other", body, header, now=1700000100)           # wrong secret
    assert not verify("k", body, header, now=1700000000 + 301)         # too old: a replay
    assert not verify("k", body, "t=abc,v1=00", now=1700000000)
    assert not verify("k", body, "", now=1700000000)
    # A forged header with a non-ASCII character is refused, not an exception in the receiver.
    assert not verify("k", body, "t=1700000000,v1=\u00e9" + "0" * 63, now=1700000000)


def test_backoff_doubles_from_one_second_and_stops_at_ten_minutes():
    class Mid:
        @staticmethod
        def uniform(_a, _b):
            return 1.0
    assert [backoff_s(n, Mid) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_s(11, Mid) == 600.0 and backoff_s(500, Mid) == 600.0
    assert all(0.8 <= backoff_s(1) <= 1.2 for _ in range(50))


# --- config ----------------------------------------------------------------------------
def test_endpoints_are_read_with_their_filters_and_secrets_never_shown():
    cfg = loads_config('[[webhooks.endpoints]]\nname = "crm"\nurl = "https://crm.example.com/hooks"\n'
                       'secret = "Zq9-first-secret"\ntypes = ["call.ended"]\nagents = ["1001"]\n'
                       '[[webhooks.endpoints]]\nurl = "http://127.0.0.1:9000/x"\nsecret = "Zq9-second-secret"\n', env={})
    crm, other = cfg.webhooks.endpoints
    assert (crm.name, crm.types, crm.agents, crm.tokens) == ("crm", ("call.ended",), ("1001",), ())
    assert other.name == "endpoint-2"
    assert crm.wants("call.ended", "1001", "x") and not crm.wants("call.connected", "1001", "x")
    assert not crm.wants("call.ended", "1002", "x") and other.wants("call.connected", "1002", "")
    shown = json.dumps(cfg.redacted())
    assert "Zq9" not in shown and "Zq9" not in repr(cfg)


@pytest.mark.parametrize("text, problem", [
    ('[[webhooks.endpoints]]\nurl = "ftp://x/"\nsecret = "s"\n', "webhooks.endpoints[0].url"),
    ('[[webhooks.endpoints]]\nurl = "https://x/"\n', "webhooks.endpoints[0].secret"),
    ('[[webhooks.endpoints]]\nurl = "https://x/"\nsecret = "s"\nevents = []\n', "events: unknown key"),
    ('[[webhooks.endpoints]]\nurl = "https://x/"\nsecret = "s"\nname = "a"\n'
     '[[webhooks.endpoints]]\nurl = "https://y/"\nsecret = "s"\nname = "a"\n', "is taken"),
    ('[webhooks]\nallowed_url_prefixes = ["https://crm.example.com"]\n', "allowed_url_prefixes[0]"),
    ('[webhooks]\nmax_streams = 8\n', "webhooks.max_streams"),
    ('[webhooks]\nallowed_url_prefixes = ["https://crm.example.com/"]\n', "webhooks.callback_secret: required"),
])
def test_bad_webhook_config_is_refused_with_a_clear_message(text, problem):
    with pytest.raises(ConfigError) as err:
        loads_config(text, env={})
    assert problem in str(err.value)


def test_status_callback_only_under_an_allowed_prefix():
    prefixes = ("https://crm.example.com/hooks/",)
    assert check_status_callback(None, prefixes) is None
    assert check_status_callback("https://crm.example.com/hooks/42", prefixes) == "https://crm.example.com/hooks/42"
    for bad in ("https://crm.example.com.evil.net/hooks/1", "http://169.254.169.254/latest/",
                "https://crm.example.com/other", "https://crm.example.com/hooks/\n", 42, "x" * 3000):
        with pytest.raises(ValueError):
            check_status_callback(bad, prefixes)
    with pytest.raises(ValueError, match="no \\[webhooks\\] allowed_url_prefixes"):
        check_status_callback("https://crm.example.com/hooks/42", ())


# --- delivery ----------------------------------------------------------------------------
def a_call(agent="1001") -> Call:
    return Call(id=new_call_id(), origin=Origin.REST, agent=agent, callee="0215550100",
                outbound_id="", clid="0215550199", call_ref="u-1", token_name="crm")


@pytest.fixture
def journal(tmp_path):
    """An empty journal on SQLite, closed after the test."""
    j = Journal(f"sqlite:///{tmp_path}/c.sqlite3")
    yield j
    j.close()


@pytest.fixture
def receivers():
    """``receivers()``: a new webhook receiver on a free loopback port; all stopped after the test."""
    made: list[WebhookReceiver] = []

    def make() -> WebhookReceiver:
        made.append(WebhookReceiver(free_port()).start())
        return made[-1]

    yield make
    for receiver in made:
        receiver.stop()


@pytest.fixture
def start_worker(journal, receivers):
    """``start_worker(config, metrics=None, stop_timeout_s=5.0)``: a started delivery worker
    on the journal's outbox (polling every 50 ms), stopped after the test before its
    receivers and the journal."""
    started: list[tuple[WebhookDelivery, float]] = []

    def start(config: WebhooksConfig, metrics: Metrics | None = None,
              stop_timeout_s: float = 5.0) -> WebhookDelivery:
        worker = WebhookDelivery(Outbox(journal.engine), config, metrics or Metrics(), poll_s=0.05)
        worker.start()
        started.append((worker, stop_timeout_s))
        return worker

    yield start
    for worker, timeout_s in started:
        worker.stop(timeout_s=timeout_s)


def test_worker_delivers_each_event_signed_in_order_to_the_endpoints_that_want_it(journal, receivers,
                                                                                   start_worker):
    receiver = receivers()
    config = WebhooksConfig(endpoints=(
        WebhookEndpoint(url=receiver.url, secret="s1", name="all"),
        WebhookEndpoint(url=receiver.url + "?ended", secret="s2", name="ended", types=("call.ended",)),
        WebhookEndpoint(url=receiver.url + "?other", secret="s3", name="other", agents=("1999",))))
    metrics = Metrics()
    worker = start_worker(config, metrics)
    call = a_call()
    journal.record(call, "placed")
    call.advance(State.DIALING_CALLEE)
    journal.record(call, "agent answered")
    call.end(Reason.CALLEE_BUSY)
    journal.record(call, "busy")
    got = receiver.wait(lambda evs: len(evs) >= 4, timeout=10)
    time.sleep(0.3)
    assert len(receiver.events()) == 4
    to_all = [(h, b, e) for h, b, e in got if e["type"] and verify("s1", b, h["x-platforma-signature"])]
    assert [e["type"] for *_x, e in to_all] == ["call.dialing_agent", "call.dialing_callee", "call.ended"]
    [(headers, body, ended)] = [x for x in got if verify("s2", x[1], x[0]["x-platforma-signature"])]
    assert ended["type"] == "call.ended" and ended["call"] == journal.get(call.id)
    assert headers["x-platforma-event-id"] == str(ended["id"]) and headers["content-type"] == "application/json"
    assert metrics.events._value.get() == 3
    assert worker.health() == {"pending": 0, "oldest_pending_s": 0.0, "backlog_growing": False}


def test_a_worker_idle_for_a_while_still_delivers_new_events_and_rows_another_worker_made(journal, receivers,
                                                                                          start_worker):
    """Once nothing is pending the passes stop looking for due deliveries; a new
    call's events, and a pending row that this worker did not make (another
    instance's fan-out), are delivered all the same."""
    receiver = receivers()
    outbox = start_worker(WebhooksConfig(endpoints=(WebhookEndpoint(url=receiver.url, secret="s", name="crm"),))).outbox
    time.sleep(1.5)                              # idle: nothing pending, the backlog read says so
    journal.record(a_call(), "placed")
    assert len(receiver.wait(lambda evs: len(evs) >= 1, timeout=20)) == 1
    time.sleep(1.5)
    # A pending row this worker did not make: another instance's, sending event 1 again.
    with journal.engine.begin() as conn:
        conn.execute(deliveries.insert().values(
            event_id=1, call_id=receiver.events()[0][2]["call"]["id"], endpoint="crm", url=receiver.url,
            status=PENDING, attempts=0, created_at=time.time(), next_at=time.time(), last_error=""))
    got = receiver.wait(lambda evs: len(evs) >= 2, timeout=20)
    assert [e["id"] for *_x, e in got] == [1, 1]
    # Delivered rows are marked at the worker's next pass: wait for it
    # (a loaded machine may take seconds), then nothing is pending.
    deadline = time.monotonic() + 20
    while outbox.backlog() != (0, 0.0) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert outbox.backlog() == (0, 0.0)


def test_a_failing_endpoint_is_retried_then_given_up_after_retry_for_s(journal, receivers, start_worker):
    receiver = receivers()
    receiver.status = 500
    config = WebhooksConfig(endpoints=(WebhookEndpoint(url=receiver.url, secret="s", name="crm"),),
                            retry_for_s=2)
    metrics = Metrics()
    start_worker(config, metrics)
    journal.record(a_call(), "placed")
    deadline = time.monotonic() + 15
    while not metrics.webhook_given_up.labels("crm")._value.get() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert metrics.webhook_given_up.labels("crm")._value.get() == 1
    assert 2 <= len(receiver.received) <= 4          # 1 s, 2 s… apart, not hammering
    assert metrics.webhook_retries.labels("crm")._value.get() == len(receiver.received) - 1
    assert Outbox(journal.engine).backlog() == (0, 0.0)


def test_a_stuck_receiver_with_a_backlog_of_many_calls_does_not_hold_back_another_receiver(journal, receivers,
                                                                                            start_worker):
    """More calls waiting for a stuck receiver than deliveries may be in flight at once:
    a healthy receiver still gets its events at once (SPEC §10: one slow receiver never
    delays the others)."""
    stuck, good = receivers(), receivers()
    stuck.hang = True
    config = WebhooksConfig(endpoints=(WebhookEndpoint(url=stuck.url, secret="s", name="stuck", agents=("1001",)),
                                       WebhookEndpoint(url=good.url, secret="s", name="good", agents=("1002",))),
                            timeout_s=30.0, max_in_flight=8, max_in_flight_per_endpoint=2)
    for _ in range(20):                      # twenty calls whose first event waits for "stuck"
        journal.record(a_call("1001"), "placed")
    worker = start_worker(config, stop_timeout_s=1)
    deadline = time.monotonic() + 10
    while worker.outbox.backlog()[0] < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)                      # "stuck" holds its two requests now
    call = a_call("1002")
    journal.record(call, "placed")
    got = good.wait(lambda evs: len(evs) >= 1, timeout=3)
    assert [e["call"]["id"] for *_x, e in got] == [call.id]


def test_a_stuck_status_callback_host_with_many_calls_does_not_hold_back_an_endpoint(journal, receivers,
                                                                                      start_worker):
    """The same with calls' own status_callback URLs, one URL per call on one stuck host:
    the host's share is full, its other calls wait, the configured endpoint does not."""
    from platforma_c2d.store.outbox import add_callback

    stuck, good = receivers(), receivers()
    stuck.hang = True
    config = WebhooksConfig(endpoints=(WebhookEndpoint(url=good.url, secret="s", name="good", agents=("1002",)),),
                            callback_secret="cb", allowed_url_prefixes=(stuck.url + "/",),
                            timeout_s=30.0, max_in_flight=8, max_in_flight_per_endpoint=2)
    for i in range(20):
        call = a_call("1001")
        journal.record(call, "placed")
        with journal.engine.begin() as conn:
            add_callback(conn, call.id, f"{stuck.url}/{i}")
    worker = start_worker(config, stop_timeout_s=1)
    deadline = time.monotonic() + 10
    while worker.outbox.backlog()[0] < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    call = a_call("1002")
    journal.record(call, "placed")
    got = good.wait(lambda evs: len(evs) >= 1, timeout=3)
    assert [e["call"]["id"] for *_x, e in got] == [call.id]


def test_a_2xx_whose_body_never_ends_is_delivered_at_once_and_the_body_not_kept(journal, start_worker):
    """The answer's status decides; its body is read no further than a little (a receiver
    that sends a body without end neither holds the delivery nor fills the memory)."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stop = threading.Event()

    def serve():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000000000\r\n\r\n")
        try:
            while not stop.is_set():      # 64 KiB every 50 ms, for as long as it is read
                conn.sendall(b"x" * 65536)
                time.sleep(0.05)
        except OSError:
            pass
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hooks"
    metrics = Metrics()
    worker = start_worker(WebhooksConfig(endpoints=(WebhookEndpoint(url=url, secret="s", name="crm"),),
                                         timeout_s=20.0), metrics, stop_timeout_s=1)
    try:
        journal.record(a_call(), "placed")
        deadline = time.monotonic() + 5
        while not metrics.webhook_delivered.labels("crm")._value.get() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert metrics.webhook_delivered.labels("crm")._value.get() == 1
        assert metrics.webhook_retries.labels("crm")._value.get() == 0
    finally:
        stop.set()
        worker.stop(timeout_s=1)
        listener.close()


# --- GET /click2dial/events ----------------------------------------------------------------
@pytest.fixture
def limited(tmp_path):
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    cfg = loads_config(f'[store]\nurl = "sqlite:///{tmp_path}/c.sqlite3"\n[ari]\nurl = "http://127.0.0.1:9"\n'
                       f'[[auth.token]]\nsha256 = "{digest}"\nagents = ["1001"]\nname = "crm"\n', env={})
    rt = Runtime(cfg)
    calls = {}
    for agent in ("1001", "1002"):
        call = a_call(agent)
        rt.journal.record(call, "placed")
        call.end(Reason.CANCELLED)
        rt.journal.record(call, "cancelled")
        calls[agent] = call.id
    yield create_app(rt.service, rt.config, rt.metrics).test_client(), calls
    rt.stop()


def _page(client, **params):
    return client.get("/click2dial/events", query_string=params,
                      headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"})


def test_json_page_shows_a_limited_token_only_its_agents_calls(limited):
    client, calls = limited
    r = _page(client)
    assert r.status_code == 200
    page = r.get_json()
    assert [(e["type"], e["call"]["id"]) for e in page["events"]] == [
        ("call.dialing_agent", calls["1001"]), ("call.ended", calls["1001"])]
    assert page["next_after"] == page["events"][-1]["id"] and page["more"] is False
    assert _page(client, agent="1002").get_json()["events"] == []
    assert _page(client, call_id=calls["1002"]).get_json()["events"] == []
    first = _page(client, limit=1).get_json()
    assert len(first["events"]) == 1 and first["more"] is True
    assert _page(client, after=first["next_after"]).get_json()["events"] == page["events"][1:]


@pytest.mark.parametrize("params, field", [({"after": "-1"}, "after"), ({"limit": "0"}, "limit"),
                                           ({"call_id": "x"}, "call_id"), ({"agent": "12"}, "agent")])
def test_bad_cursor_or_filter_is_400(limited, params, field):
    client, _calls = limited
    r = _page(client, **params)
    assert r.status_code == 400 and field in r.get_json()["details"]["fields"]


def test_every_unknown_repeated_or_bad_parameter_of_the_events_is_named_at_once(limited):
    client, _calls = limited
    r = client.get("/click2dial/events?after=abc&limit=-1&agnet=1001&call_id=x&agent=1001&agent=1002",
                   headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/json",
                            "Last-Event-ID": "x"})
    assert r.status_code == 400 and r.get_json()["error"] == "invalid-request"
    fields = r.get_json()["details"]["fields"]
    assert set(fields) == {"after", "limit", "agnet", "call_id", "agent", "Last-Event-ID"}
    assert fields["agnet"].startswith("unknown query parameter; known: after, limit, call_id, agent")
    assert fields["agent"] == "given more than once"
    # The stream (no Accept: application/json) refuses the same way before it opens.
    r = client.get("/click2dial/events?agnet=1001", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 400 and set(r.get_json()["details"]["fields"]) == {"agnet"}


def test_head_requests_of_the_stream_never_use_up_the_open_streams(limited):
    """HEAD runs the stream's handler but never its body: the slot it took is given back
    (four HEADs, [webhooks] max_streams, used to refuse every stream after them)."""
    client, _calls = limited
    auth = {"Authorization": f"Bearer {TOKEN}", "Accept": "text/event-stream"}
    for _ in range(6):
        r = client.head("/click2dial/events", headers=auth)
        assert r.status_code == 200
        r.close()
    r = client.get("/click2dial/events", headers=auth, buffered=False)
    assert r.status_code == 200, r.get_json()
    r.close()


def test_stream_sends_stored_events_with_their_ids_and_resumes_after_last_event_id(limited):
    client, calls = limited
    auth = {"Authorization": f"Bearer {TOKEN}", "Accept": "text/event-stream"}
    page = _page(client).get_json()["events"]
    r = client.get("/click2dial/events", headers={**auth, "Last-Event-ID": str(page[0]["id"])}, buffered=False)
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    chunks = r.response
    assert next(chunks).startswith(b"retry:")
    text = next(chunks).decode()
    assert text == f"id: {page[1]['id']}\nevent: call.ended\ndata: {json.dumps(page[1], separators=(',', ':'))}\n\n"
    r.close()


# --- platforma-c2d events ----------------------------------------------------------------
def test_events_command_prints_stored_events_as_json_lines(tmp_path, capsys):
    from platforma_c2d.cli import main

    config = tmp_path / "c.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/c.sqlite3"\n')
    journal = Journal(f"sqlite:///{tmp_path}/c.sqlite3")
    calls = [a_call("1001"), a_call("1002")]
    for call in calls:
        journal.record(call, "placed")
        call.end(Reason.CANCELLED)
        journal.record(call, "cancelled")
    journal.close()
    assert main(["events", "--config", str(config)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["id"], e["type"], e["call"]["id"]) for e in lines] == [
        (1, "call.dialing_agent", calls[0].id), (2, "call.ended", calls[0].id),
        (3, "call.dialing_agent", calls[1].id), (4, "call.ended", calls[1].id)]
    assert main(["events", "--config", str(config), "--after", "1", "--agent", "1002"]) == 0
    assert [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()] == [3, 4]
    assert main(["events", "--config", str(config), "--call-id", "nope"]) == 2
    assert "--call-id" in capsys.readouterr().err
