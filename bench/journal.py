"""The journal alone: records per CPU-second of the writer, on SQLite or PostgreSQL.

``python -m bench.journal [--store sqlite|postgresql] [--calls N] [--rounds R]``

No Asterisk, no service: a :class:`~platforma_c2d.store.writer.JournalWriter`
on a fresh store is handed the records a REST call makes (placed, agent
answered, bridged, ended: four, each a change of state with its event,
SPEC §10) in two patterns:

* ``one by one``: each record awaited before the next is submitted, so
  every transaction holds one record — the service at low rates, where
  the writer's batches hold one or two records;
* ``queued``: the records of ``--burst`` calls submitted at once, then
  awaited — batches of many records, several of one call in each.

CPU is this process's ``utime + stime`` (the writer thread and SQLite's
own work, the fsyncs' system time included); on PostgreSQL also the
server's processes, read from ``/proc``. Figures of one run on a shared
machine: compare versions alternated in one run (``--rounds``), as ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.procstat import cpu_seconds
from platforma_c2d.calls.model import Call, Origin, Reason, State, new_call_id
from platforma_c2d.store.journal import Journal
from platforma_c2d.store.writer import JournalWriter


def _server_cpu(postmaster: int | None) -> float:
    """utime + stime of a PostgreSQL server and its backends (0.0 for SQLite)."""
    if postmaster is None:
        return 0.0
    total = cpu_seconds(postmaster)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == postmaster:
                        total += cpu_seconds(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return total


def _a_call() -> Call:
    return Call(id=new_call_id(), origin=Origin.REST, agent="1001", callee="0215550100",
                outbound_id="", clid="0215550199", call_ref="CRM-1", token_name="crm")


def _steps(call: Call):
    """The four changes of a REST call, as ``(change, detail)``: each applies itself."""
    yield (lambda: None), "call requested by crm: agent 1001"
    yield (lambda: call.advance(State.DIALING_CALLEE)), "agent answered; dialling the callee"
    yield (lambda: call.advance(State.CONNECTED)), "callee answered; bridged"
    yield (lambda: call.end(Reason.COMPLETED)), "callee leg ended"


def one_by_one(writer: JournalWriter, calls: int) -> int:
    """Each record committed before the next is submitted; returns records written."""
    written = 0
    for _ in range(calls):
        call = _a_call()
        for change, detail in _steps(call):
            change()
            writer.submit(call, detail).result(timeout=30)
            written += 1
    return written


def queued(writer: JournalWriter, calls: int, burst: int) -> int:
    """The records of ``burst`` calls submitted at once, then awaited; returns records written."""
    written = 0
    for start in range(0, calls, burst):
        futures = []
        for _ in range(min(burst, calls - start)):
            call = _a_call()
            for change, detail in _steps(call):
                change()
                futures.append(writer.submit(call, detail))
        for done in futures:
            done.result(timeout=30)
        written += len(futures)
    return written


def measure(url: str, pattern: str, calls: int, burst: int, postmaster: int | None) -> dict:
    """One pattern on a fresh journal at ``url``: records, CPU seconds, records per CPU-second."""
    journal = Journal(url)
    writer = JournalWriter(journal)
    try:
        me, server, wall = time.process_time(), _server_cpu(postmaster), time.monotonic()
        if pattern == "one by one":
            records = one_by_one(writer, calls)
        else:
            records = queued(writer, calls, burst)
        me, server = time.process_time() - me, _server_cpu(postmaster) - server
        wall = time.monotonic() - wall
    finally:
        writer.close()
        journal.close()
    return {"pattern": pattern, "records": records, "commits": writer.commits, "cpu_s": me,
            "server_cpu_s": server, "wall_s": wall, "per_cpu_s": records / me if me else 0.0,
            "per_cpu_s_with_server": records / (me + server) if me + server else 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.journal", description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--calls", type=int, default=500, help="calls per pattern (4 records each)")
    parser.add_argument("--burst", type=int, default=50, help="calls queued at once in the queued pattern")
    parser.add_argument("--rounds", type=int, default=3, help="times each pattern is run (medians shown)")
    args = parser.parse_args(argv)
    server = None
    work = Path(tempfile.mkdtemp(prefix="c2d-journal-bench-"))
    try:
        if args.store == "postgresql":
            from testbed.postgres import PostgresServer
            server = PostgresServer().start()   # its own directory, readable by the server's user
        results: dict[str, list[dict]] = {"one by one": [], "queued": []}
        for round_ in range(args.rounds):
            for pattern in results:
                url = (server.new_database("j") if server is not None
                       else f"sqlite:///{work / f'calls-{round_}-{len(results[pattern])}-{pattern[0]}.sqlite3'}")
                results[pattern].append(measure(url, pattern, args.calls, args.burst,
                                                server._proc.pid if server is not None else None))
        print(f"journal alone, {args.store}, {args.calls} calls x 4 records per pattern, "
              f"{args.rounds} rounds (medians; each round's figure in brackets)")
        for pattern, runs in results.items():
            per = [r["per_cpu_s"] for r in runs]
            line = (f"  {pattern:>10}: {statistics.median(per):8.0f} records per CPU-second "
                    f"[{', '.join(f'{p:.0f}' for p in per)}], "
                    f"{statistics.median(r['cpu_s'] * 1000 / r['records'] for r in runs):.3f} ms CPU per record, "
                    f"{statistics.median(r['records'] / r['commits'] for r in runs):.1f} records per commit")
            if server is not None:
                line += (f"; with the server's CPU "
                         f"{statistics.median(r['per_cpu_s_with_server'] for r in runs):.0f} per CPU-second")
            print(line)
    finally:
        if server is not None:
            server.stop()
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
