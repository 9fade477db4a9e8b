"""Call events on and off in one run: what delivering webhooks costs the service, per call and per event.

``python -m bench.events_onoff [--store sqlite|postgresql] [--rate R] [--seconds S] [--rounds N]``

One Asterisk, started once (the bench's own rig, ``bench.phases.Bench``);
the service started afresh for each turn, events off (no endpoint) and on
(one ``[[webhooks.endpoints]]`` delivering every event to
``bench/receiver.py``, which answers 204 and keeps its connections),
alternated ``--rounds`` times. Each turn places REST calls and header-path
calls at ``--rate`` for ``--seconds`` each (the latency runs of the
benchmark) and counts the service's CPU and Asterisk's per call of each
path, and the service's per call of both until every event of the turn
is delivered (each turn on a fresh store). The difference on minus off of
the latter, divided by the events delivered per call, is the service's
CPU per delivered event. Needs root and the bench root, like
``bench.run`` (docs/performance.md, "Running it").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
from dataclasses import replace

from bench.phases import Bench
from bench.plan import PHONE, PHONE_PORT, QUICK, RESULTS, SERVICE_OVERRIDES, STORE, log
from bench.procstat import cpu_seconds
from bench.receiver import Receiver
from testbed.root import ensure_root


async def turn(bench: Bench, receiver: Receiver | None, rate: float, seconds: float,
               new_database=None) -> dict:
    """One turn: the service started (events on when ``receiver``; on a new database of
    ``new_database(prefix)`` when given, else a new SQLite file), REST then header calls, stopped."""
    SERVICE_OVERRIDES.pop("webhooks", None)
    if receiver is not None:
        SERVICE_OVERRIDES["webhooks"] = {"endpoints": [{"url": receiver.url, "secret": "bench-secret"}]}
    if new_database is not None:
        STORE["url"] = new_database("onoff")
    shutil.rmtree(bench.workdir / "service", ignore_errors=True)      # a fresh SQLite store
    await bench.start_service()
    got0 = receiver.received if receiver else 0
    out: dict = {"events": "on" if receiver else "off"}
    try:
        await asyncio.sleep(2.0)                    # its start's own work done
        idle0 = cpu_seconds(bench.svc.proc.pid)
        await asyncio.sleep(5.0)
        out["idle_cpu_pct"] = round((cpu_seconds(bench.svc.proc.pid) - idle0) / 5.0 * 100, 2)
        total0, calls_all = cpu_seconds(bench.svc.proc.pid), 0
        for path in ("rest", "header"):
            svc0, ast0 = cpu_seconds(bench.svc.proc.pid), cpu_seconds(bench.ast.proc.pid)
            if path == "rest":
                part = await bench.latency_rest(bench.service, rate, seconds)
            else:
                part = await bench.latency_header(PHONE, PHONE_PORT, rate, seconds)
            await asyncio.sleep(1.0)                # the last deliveries of the turn's calls
            calls = part["calls"]
            calls_all += calls
            out[path] = {"calls": calls, "failed": part["failed"],
                         "service_cpu_ms_per_call": round((cpu_seconds(bench.svc.proc.pid) - svc0)
                                                          / calls * 1000, 2),
                         "asterisk_cpu_ms_per_call": round((cpu_seconds(bench.ast.proc.pid) - ast0)
                                                           / calls * 1000, 2)}
        # Drained: every event of the turn's calls delivered (its count still for 2 s).
        last, still_since = -1, asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - still_since < 2.0:
            await asyncio.sleep(0.25)
            now = receiver.received if receiver else 0
            if now != last:
                last, still_since = now, asyncio.get_running_loop().time()
        out["service_cpu_ms_per_call"] = round((cpu_seconds(bench.svc.proc.pid) - total0) / calls_all * 1000, 2)
    finally:
        await bench.stop_service()
    if receiver is not None:
        out["delivered"] = receiver.received - got0
    return out


async def run(rate: float, seconds: float, rounds: int, new_database=None) -> list[dict]:
    """Asterisk started once; ``rounds`` × (off, on), the order swapped every other round."""
    root = await asyncio.to_thread(ensure_root, log)
    workdir = RESULTS / "work-onoff"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    bench = Bench(replace(QUICK, floor=False), root, workdir)
    receiver = Receiver().start()
    turns = []
    try:
        await bench.start()
        for r in range(rounds):
            for on in ((False, True) if r % 2 == 0 else (True, False)):
                turns.append(await turn(bench, receiver if on else None, rate, seconds, new_database))
                log(json.dumps(turns[-1]))
    finally:
        await bench.stop()
        receiver.stop()
    return turns


def summary(turns: list[dict]) -> dict:
    """Medians per side, and the service's CPU per delivered event (on minus off)."""
    out: dict = {}
    for side in ("off", "on"):
        mine = [t for t in turns if t["events"] == side]
        out[side] = {f"{path}_{k}": round(statistics.median(t[path][k] for t in mine), 2)
                     for path in ("rest", "header") for k in ("service_cpu_ms_per_call",
                                                              "asterisk_cpu_ms_per_call")}
        out[side]["idle_cpu_pct"] = round(statistics.median(t["idle_cpu_pct"] for t in mine), 2)
        out[side]["service_cpu_ms_per_call"] = round(statistics.median(t["service_cpu_ms_per_call"]
                                                                       for t in mine), 2)
    on = [t for t in turns if t["events"] == "on"]
    calls = sum(t["rest"]["calls"] + t["header"]["calls"] for t in on)
    per_call = sum(t["delivered"] for t in on) / calls if calls else 0.0
    out["events_per_call"] = round(per_call, 2)
    added = out["on"]["service_cpu_ms_per_call"] - out["off"]["service_cpu_ms_per_call"]
    out["added_ms_per_call"] = round(added, 2)
    out["added_ms_per_event"] = round(added / per_call, 2) if per_call else None
    return out


def main(argv: list[str] | None = None) -> int:
    """The command line (``--help``); prints each turn and the summary as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.events_onoff", description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rate", type=float, default=4.0, help="calls per second of each path")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds of calls per path and turn")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of turns (off, on)")
    args = parser.parse_args(argv)
    postgres = None
    if args.store == "postgresql":
        from testbed.postgres import PostgresServer

        postgres = PostgresServer().start()
    try:
        turns = asyncio.run(run(args.rate, args.seconds, args.rounds,
                                postgres.new_database if postgres else None))
    finally:
        if postgres is not None:
            postgres.stop()
    print(json.dumps({"store": args.store, "rate": args.rate, "turns": turns, "summary": summary(turns)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
