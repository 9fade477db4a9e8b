"""What the webhook delivery worker costs the store and the receiver (issue 20, docs/performance.md):
an idle worker's passes, connections kept open to a receiver, the body of a delivery."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sqlalchemy import event

from platforma_c2d.calls.model import Reason, State
from platforma_c2d.config import WebhookEndpoint, WebhooksConfig
from platforma_c2d.metrics import Metrics
from platforma_c2d.store.journal import Journal
from platforma_c2d.store.outbox import Outbox, event_dict, event_json
from platforma_c2d.webhooks.delivery import WebhookDelivery
from testbed.receiver import WebhookReceiver
from testbed.service import free_port


from tests.unit.test_webhooks import a_call, journal  # noqa: F401 - the call and the fixture, as there


def _worker(journal: Journal, url: str) -> WebhookDelivery:
    config = WebhooksConfig(endpoints=(WebhookEndpoint(url=url, secret="s", name="crm"),))
    return WebhookDelivery(Outbox(journal.engine), config, Metrics(), poll_s=0.05)


def test_an_idle_worker_only_looks_at_the_newest_event_and_the_backlog(journal):
    """Nothing pending, nothing new: a pass is one read of the newest event id (and once
    a second the backlog gauge); no transaction, no fan-out, no look for due deliveries."""
    receiver = WebhookReceiver(free_port()).start()
    worker = _worker(journal, receiver.url)
    worker.start()
    try:
        journal.record(a_call(), "placed")
        receiver.wait(lambda evs: len(evs) >= 1, timeout=10)
        deadline = time.monotonic() + 10
        while worker.outbox.backlog() != (0, 0.0) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)                          # the backlog gauge saw it empty
        seen: list[str] = []

        def record(_conn, _cursor, statement, *_args):
            seen.append(" ".join(statement.split()))

        event.listen(journal.engine, "before_cursor_execute", record)
        time.sleep(1.5)
        event.remove(journal.engine, "before_cursor_execute", record)
    finally:
        worker.stop()
        receiver.stop()
    newest = [s for s in seen if s.startswith("SELECT max(events.id)")]
    gauge = [s for s in seen if s.startswith("SELECT count(*)")]
    assert len(newest) >= 10                     # polled every 50 ms
    assert 1 <= len(gauge) <= 3
    assert [s for s in seen if s not in newest and s not in gauge] == []


class _KeepAliveReceiver:
    """HTTP/1.1 receiver that keeps its connections; counts them and records the events."""

    def __init__(self) -> None:
        self.connections, self.events = 0, []
        lock, owner = threading.Lock(), self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with lock:
                    owner.connections += 1

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    owner.events.append(json.loads(body))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_deliveries_to_a_receiver_that_keeps_its_connections_open_go_over_a_few_connections(journal):
    receiver = _KeepAliveReceiver()
    worker = _worker(journal, receiver.url)
    worker.start()
    calls = [a_call() for _ in range(5)]
    try:
        for call in calls:
            journal.record(call, "placed")
            call.advance(State.DIALING_CALLEE)
            journal.record(call, "agent answered")
            call.end(Reason.CALLEE_BUSY)
            journal.record(call, "busy")
        deadline = time.monotonic() + 20
        while len(receiver.events) < 15 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
        receiver.stop()
    assert len(receiver.events) == 15
    for call in calls:
        assert [e["type"] for e in receiver.events if e["call"]["id"] == call.id] == [
            "call.dialing_agent", "call.dialing_callee", "call.ended"]
    # At most max_in_flight_per_endpoint (4) at once: never a connection per delivery.
    assert 1 <= receiver.connections <= 4


def test_a_deliverys_body_is_the_event_as_compact_json_with_the_call_as_stored():
    call = {"id": "c1", "call_ref": "Zürich \"7\" €", "duration_s": 5.619, "reason": None, "ok": True}
    row = {"id": 1042, "type": "call.ended", "at": "2026-12-07T06:41:41.490Z",
           "call": json.dumps(call, separators=(",", ":"))}
    assert event_json(row) == json.dumps(event_dict(row), separators=(",", ":")).encode()
    assert json.loads(event_json(row)) == {"id": 1042, "type": "call.ended",
                                           "at": "2026-12-07T06:41:41.490Z", "call": call}


def test_the_journals_connections_keep_synchronous_full_after_the_worker_s_bookkeeping(journal):
    """The deliveries' bookkeeping commits without fsync (decision 0022); the journal's own
    commits on the same pool still wait for the disk (decision 0004)."""
    box = Outbox(journal.engine)
    journal.record(a_call(), "placed")
    box.fan_out(lambda _ev, _cb: [("crm", "http://127.0.0.1:9/hooks")])
    (row,) = box.due(2 ** 40, set())
    box.fan_out(lambda _ev, _cb: [], delivered=[row["id"]])
    box.retry(row["id"], 2 ** 40, "HTTP 500")
    assert box.backlog()[0] == 0
    with journal.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2      # FULL
    journal.record(a_call(), "placed")
    assert len(box.read()) == 2


def test_with_nothing_to_deliver_to_the_worker_looks_at_the_store_every_few_seconds(journal):
    """No endpoint and no allowed status_callback prefix (events off, the default): the
    passes only move the fan-out cursor, a few seconds apart, not every poll."""
    worker = WebhookDelivery(Outbox(journal.engine), WebhooksConfig(), Metrics(), poll_s=0.05)
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        seen.append(statement)

    worker.start()
    try:
        time.sleep(0.5)                          # its first pass
        journal.record(a_call(), "placed")
        event.listen(journal.engine, "before_cursor_execute", record)
        time.sleep(2.0)
        event.remove(journal.engine, "before_cursor_execute", record)
        deadline = time.monotonic() + 10
        while not worker.outbox._fanned_to and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.stop()
    assert len([s for s in seen if "events" in s]) <= 2       # at most one pass in 2 s (not 40)
    assert worker.outbox._fanned_to == 1                      # the cursor moved all the same
