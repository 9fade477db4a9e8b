"""The webhook delivery worker alone: its CPU at rest and per delivered event, on SQLite or PostgreSQL.

``python -m bench.webhooks [--store sqlite|postgresql] [--rate R] [--seconds S] [--rounds N]
[--receiver keep-alive|close]``

No Asterisk, no service: a journal on a fresh store records the four
changes of a REST call (placed, agent answered, bridged, ended: four
events, SPEC §10) for ``--rate`` calls a second, and a
:class:`~platforma_c2d.webhooks.delivery.WebhookDelivery` delivers each
event to one endpoint: a receiver in a process of its own that answers
204 at once, over HTTP/1.1 keeping its connections (``keep-alive``) or
HTTP/1.0 closing each (``close``, as the benchmark's receiver did).

CPU is the ``webhooks`` thread's ``utime + stime`` (``/proc``), the
store's own work included on SQLite; on PostgreSQL the server's
processes are shown apart (they also do the journal's writes, the same
for any version of the worker). Two figures per round: at rest (no
events, the worker polling the store), in ms of CPU per second; and
with events, in ms per delivered event. To compare versions of the
worker, run this module with each on ``PYTHONPATH``, alternated.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.journal import _a_call, _server_cpu, _steps
from platforma_c2d.config import WebhookEndpoint, WebhooksConfig
from platforma_c2d.metrics import Metrics
from platforma_c2d.store.journal import Journal
from platforma_c2d.store.outbox import Outbox

_TICK = os.sysconf("SC_CLK_TCK")


def _thread_cpu_s(native_id: int) -> float:
    """utime + stime of one thread of this process, in seconds."""
    with open(f"/proc/self/task/{native_id}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _serve(port, received, connections, keep_alive: bool) -> None:
    """The receiver's process: answers every POST 204, counts requests and connections."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

        def setup(self) -> None:
            super().setup()
            with connections.get_lock():
                connections.value += 1

        def do_POST(self) -> None:          # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with received.get_lock():
                received.value += 1
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port.value = server.server_port
    server.serve_forever()


def measure(url: str, rate: float, seconds: float, rest_s: float, keep_alive: bool,
            postmaster: int | None) -> dict:
    """One round on a fresh store: the worker at rest, then under ``rate`` calls/s for ``seconds``."""
    ctx = multiprocessing.get_context("fork")
    port, received, connections = ctx.Value("i", 0), ctx.Value("l", 0), ctx.Value("l", 0)
    receiver = ctx.Process(target=_serve, args=(port, received, connections, keep_alive), daemon=True)
    receiver.start()
    while not port.value:
        time.sleep(0.01)
    journal = Journal(url)
    config = WebhooksConfig(endpoints=(WebhookEndpoint(url=f"http://127.0.0.1:{port.value}/events",
                                                       secret="bench-secret", name="bench"),))
    from platforma_c2d.webhooks.delivery import WebhookDelivery

    worker = WebhookDelivery(Outbox(journal.engine), config, Metrics())
    try:
        worker.start()
        time.sleep(1.0)                 # its first passes: the cursor row, the first backlog read
        tid = worker._thread.native_id
        cpu0, t0 = _thread_cpu_s(tid), time.monotonic()
        time.sleep(rest_s)
        rest = (_thread_cpu_s(tid) - cpu0) / (time.monotonic() - t0)
        events, start = 0, time.monotonic()
        cpu0, server0 = _thread_cpu_s(tid), _server_cpu(postmaster)
        n = 0
        while time.monotonic() - start < seconds:
            call = _a_call()
            for change, detail in _steps(call):
                change()
                journal.record(call, detail)
                events += 1
            n += 1
            time.sleep(max(0.0, start + n / rate - time.monotonic()))
        deadline = time.monotonic() + 60
        while received.value < events and time.monotonic() < deadline:
            time.sleep(0.05)
        cpu, server = _thread_cpu_s(tid) - cpu0, _server_cpu(postmaster) - server0
    finally:
        worker.stop()
        journal.close()
        receiver.kill()
        receiver.join()
    return {"events": events, "delivered": received.value, "connections": connections.value,
            "rest_ms_per_s": rest * 1000, "cpu_ms_per_event": cpu * 1000 / max(1, received.value),
            "server_ms_per_event": server * 1000 / max(1, received.value)}


def main(argv: list[str] | None = None) -> int:
    """The command line (``--help``); prints one JSON line per round and the medians."""
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rate", type=float, default=5.0, help="calls per second (4 events each)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of calls per round")
    parser.add_argument("--rest", type=float, default=5.0, help="seconds at rest per round")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--receiver", choices=("keep-alive", "close"), default="keep-alive")
    parser.add_argument("--label", default="", help="a name for this version, printed with its figures")
    args = parser.parse_args(argv)
    postgres = None
    if args.store == "postgresql":
        from testbed.postgres import PostgresServer

        postgres = PostgresServer().start()
    rounds = []
    try:
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                url = postgres.new_database("hooks") if postgres else f"sqlite:///{tmp}/c.sqlite3"
                pid = postgres._proc.pid if postgres else None
                rounds.append(measure(url, args.rate, args.seconds, args.rest,
                                      args.receiver == "keep-alive", pid))
                print(json.dumps({"label": args.label, **rounds[-1]}), flush=True)
    finally:
        if postgres is not None:
            postgres.stop()
    keys = ("rest_ms_per_s", "cpu_ms_per_event", "server_ms_per_event")
    print(json.dumps({"label": args.label, "store": args.store, "receiver": args.receiver,
                      **{k: round(statistics.median(r[k] for r in rounds), 3) for k in keys}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
