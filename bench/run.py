"""The benchmark: the service against bare Asterisk, on the real bench (issue 8).

One command (``bash scripts/bench.sh``, or ``python -m bench.run`` once
``scripts/setup.sh`` has run) starts Asterisk 22 from the cached bench root
with SIPp peers that answer at once (no ring time, no media) and measures:

1. set-up latency (median, p95, p99) of the REST path and the header
   (WebRTC) path, phase by phase, at half of the service's capacity: wire
   times from the SIPp message logs, bridge times from the ``timestamp`` of
   ``ChannelEnteredBridge`` events read by a separate observer ARI app;
2. capacity: the highest sustained rate (calls/s) with zero failed calls and
   zero leftover channels, ramped in steps, and the most simultaneous
   connected calls, ramped with long talk times;
3. the same for bare Asterisk: ARI originate into a bench-only dialplan
   context (``Set(CALLERID(num))`` + ``Dial`` to the trunk) and a SIP phone
   whose context is that dialplan, connecting the same SIPp peers — every
   figure is also given as a ratio to it; and the capacity of the "ARI
   floor" (``bench/floor.py``): a minimal Stasis app that makes the
   service's ARI requests and nothing else, to split the gap into
   Asterisk's own cost of ARI and the service's;
4. the service's CPU time and peak memory per 1,000 calls, and its RSS
   sampled through the run.
5. then the service again with ``[dial] bridging = "dialplan"`` (Asterisk
   dials and bridges the callee, ``bench/dialplan.py``): its capacity and
   Asterisk's CPU per call beside bare Asterisk's (``--set dialplan=false``:
   not measured).

It prints a table, writes every figure to ``bench-results/latest.json`` (and
a Markdown table to ``bench-results/latest.md``; ``--update-docs`` puts that
table into docs/performance.md). Needs root (chroot, mount). It stops every
process inside the bench root when it ends, like the tests do: give it a root
of its own (``C2D_BENCH_ROOT``) and a network namespace of its own when
anything else uses Asterisk's ports on the machine (see docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import time
import traceback
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from bench.dialplan import dialplan_phases, render_dialplan
from bench.floors import check_variants, floor_phases, render_floors
from bench.phases import Bench
from bench.plan import FULL, QUICK, RESULTS, SERVICE_OVERRIDES, STORE, Plan, log
from bench.pyspy import profile_summary
from bench.receiver import Receiver
from bench.report import machine, render, update_docs
from bench.stats import derive, memory_trend
from bench.subjects import Baseline
from testbed.root import ensure_root


async def run(plan: Plan, mode: str, profile: bool = False) -> dict:
    """One whole run of ``plan`` (bare Asterisk, the ARI floor, the service: rate ramps,
    latency, simultaneous calls, soak): every figure in a dict, partial with ``error`` when
    it failed or was interrupted (SIGINT, SIGTERM); everything started is stopped."""
    root = await asyncio.to_thread(ensure_root, log)
    workdir = RESULTS / "work"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    bench = Bench(plan, root, workdir, profile)
    started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    t0 = time.time()
    res: dict = {"started": started, "mode": mode, "plan": asdict(plan)}
    # Ctrl-C or kill: stop everything that was started, keep what was measured
    # (also when started in the background, where SIGINT is ignored by default).
    loop, main_task = asyncio.get_running_loop(), asyncio.current_task()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main_task.cancel)
    try:
        log(f"starting Asterisk in {root}")
        await bench.start()
        info = bench.ast.ari.get("/asterisk/info").json()
        res["machine"] = machine(info.get("system", {}).get("version", "?"))
        baseline = Baseline(bench.ari)

        log("bare Asterisk: rate ramp")
        res["asterisk"] = {"rate": await bench.phase_rate(baseline)}

        if plan.floor:
            await floor_phases(bench, baseline, res)
        if not plan.service:
            log("no service in this run (--set service=false)")
        else:
            await service_phases(bench, baseline, res)
            if plan.dialplan:
                await dialplan_phases(bench, baseline, res)
    except asyncio.CancelledError:
        res["error"] = "interrupted"
        log("interrupted")
    except Exception:  # noqa: BLE001 - keep what was measured, say what broke
        res["error"] = traceback.format_exc()
        log("the benchmark failed:\n" + res["error"])
    finally:
        log("stopping")
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await bench.stop()
    res["duration_s"] = round(time.time() - t0, 1)
    if "error" not in res and "service" in res:
        res["derived"] = derive(res)
    return res


async def service_phases(bench: Bench, baseline: Baseline, res: dict) -> None:
    """The service's part of a run, into ``res``: its rate ramp, the latency of both paths
    against bare Asterisk, the simultaneous calls of both, the soak, its resources."""
    plan = bench.plan
    if bench.svc is None:       # not started for the floors' CPU phase (bench/floors.py)
        log("starting the service")
        await bench.start_service()
    log("service: rate ramp")
    res["service"] = {"rate": await bench.phase_rate(bench.service)}
    cap_s = res["service"]["rate"]["capacity_cps"] or plan.start_rate / 2
    cap_b = res["asterisk"]["rate"]["capacity_cps"] or plan.start_rate / 2
    lat_rate = plan.latency_rate or max(1.0, cap_s / 2)
    conc_rate = max(5.0, round(0.8 * min(cap_s, cap_b), 1))

    log(f"latency at {lat_rate:.1f} calls/s: service and bare Asterisk, REST and header path, "
        f"interleaved")
    lat = await bench.phase_latency(baseline, lat_rate, plan.latency_rounds)
    res["service"]["latency"], res["asterisk"]["latency"] = lat["service"], lat["asterisk"]
    log(f"service: simultaneous calls, set up at {conc_rate:.1f} calls/s")
    res["service"]["concurrency"] = await bench.phase_concurrency(bench.service, conc_rate)
    if plan.soak_s > 0:
        log(f"service: soak, {plan.soak_s:.0f} s at {lat_rate:.1f} calls/s in two halves (memory)")
        halves = [await bench.step(bench.service, lat_rate, max(1, round(lat_rate * plan.soak_s / 2)),
                                   plan.talk_s, f"soak {i}/2") for i in (1, 2)]
        res["service"]["soak"] = {
            "rate": round(lat_rate, 1), "calls": sum(h["calls"] for h in halves),
            "passed": all(h["passed"] for h in halves),
            "why": "; ".join(h["why"] for h in halves if h["why"]), "halves": halves}
        log("  soak: " + ("ok" if res["service"]["soak"]["passed"] else "FAIL " + res["service"]["soak"]["why"]))
    calls_total = bench.service_calls()
    used = await bench.stop_service()
    lat_s = res["service"]["latency"]
    res["service"]["resources"] = {
        "calls": calls_total, "cpu_s": used["cpu_s"],
        "cpu_s_per_1000_calls": round(used["cpu_s"] / calls_total * 1000, 2) if calls_total else None,
        "cpu_s_per_1000_rest_steady": lat_s["rest"]["service_cpu_ms_per_call"],
        "cpu_s_per_1000_header_steady": lat_s["header"]["service_cpu_ms_per_call"],
        "asterisk_cpu_s_per_1000": {
            f"{side}_{path}": res[side]["latency"][path]["asterisk_cpu_ms_per_call"]
            for side in ("service", "asterisk") for path in ("rest", "header")},
        "vmhwm_mb": round(used.get("VmHWM", 0) / 1024, 1),
        "rss_end_mb": round(used.get("VmRSS", 0) / 1024, 1),
        **memory_trend(bench.idle_rss), "idle_rss": bench.idle_rss, "rss_samples": bench.samples,
    }

    log(f"bare Asterisk: simultaneous calls, set up at {conc_rate:.1f} calls/s")
    res["asterisk"]["concurrency"] = await bench.phase_concurrency(baseline, conc_rate)
    res["observer_events"] = bench.obs.events


def main(argv: list[str] | None = None) -> int:
    """The command line of ``python -m bench.run`` (``--help``); returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short steps and small ramps (about 3 minutes)")
    p.add_argument("--out", default=str(RESULTS / "latest.json"), help="where the JSON figures go")
    p.add_argument("--update-docs", action="store_true",
                   help="also write the table into docs/performance.md (between the bench markers)")
    p.add_argument("--profile", action="store_true",
                   help="record the service with py-spy (pip install py-spy) into "
                        "bench-results/profile-service.txt and print where its CPU time goes")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="override a field of the plan, e.g. --set step_s=5 --set conc_budget_s=30")
    p.add_argument("--soak", type=float, metavar="SECONDS",
                   help="endurance only (bench/endurance.py): find the service's capacity, then place "
                        "calls at half of it for SECONDS, sampling fds, threads and memory of the "
                        "service and Asterisk; --set soak_rate=R skips the ramp")
    p.add_argument("--webhook", action="store_true",
                   help="events on: the service delivers every call event to one local webhook "
                        "receiver that answers 204 (bench/receiver.py)")
    p.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite",
                   help="the service's journal: its SQLite file (the default), or a database of a "
                        "PostgreSQL server started for the run (testbed/postgres.py)")
    p.add_argument("--cluster", action="store_true",
                   help="the service as the active instance of node a of a cluster ([cluster] node, "
                        "every agent to node a: its lease and the commands' listener run); needs "
                        "--store postgresql")
    p.add_argument("--from-json", metavar="FILE",
                   help="do not run: print the table of an earlier run's JSON (with --update-docs: "
                        "put it into docs/performance.md)")
    args = p.parse_args(argv)
    if args.cluster and args.store != "postgresql":
        p.error("--cluster needs --store postgresql (a cluster shares a PostgreSQL store)")
    if args.from_json:
        old = json.loads(Path(args.from_json).read_text())
        md = "\n".join(x for x in (render(old) if "service" in old else "", render_dialplan(old),
                                     render_floors(old)) if x)
        print(md)
        if args.update_docs:
            print("docs/performance.md updated" if update_docs(md) else
                  "docs/performance.md has no bench markers: not updated")
        return 0
    if os.geteuid() != 0:
        print("bench: run as root (the Asterisk bench uses chroot and mount)", file=sys.stderr)
        return 2
    plan, mode = (QUICK, "quick") if args.quick else (FULL, "full")
    if args.soak:
        return soak_main(plan, args)
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in Plan.__dataclass_fields__:
            p.error(f"--set: no plan field {key!r} (fields: {', '.join(Plan.__dataclass_fields__)})")
        setattr(plan, key, json.loads(value))
        mode += f" {key}={value}"
    try:
        check_variants(plan.floor_variants)
    except ValueError as exc:
        p.error(str(exc))
    if not plan.service and not plan.floor:
        p.error("--set service=false needs the floor (floor=true): nothing would be measured")
    postgres = None
    if args.store == "postgresql":
        from testbed.postgres import PostgresServer

        postgres = PostgresServer().start()
        STORE["url"] = postgres.new_database("bench")
        mode += " store=postgresql"
    if args.cluster:
        SERVICE_OVERRIDES["cluster"] = {"node": "a", "instance": "a1", "rules": ["*=a"]}
        mode += " cluster"
    receiver = None
    if args.webhook:
        receiver = Receiver().start()
        SERVICE_OVERRIDES["webhooks"] = {"endpoints": [{"url": receiver.url, "secret": "bench-secret"}]}
        mode += " webhook"
    try:
        res = asyncio.run(run(plan, mode, args.profile))
    finally:
        if receiver is not None:
            receiver.stop()
        if postgres is not None:
            postgres.stop()
    if receiver is not None:
        res["webhook"] = {"received": receiver.received}
        print(f"webhook receiver: {receiver.received} events delivered")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    if "error" in res:
        print(f"bench: failed after {res['duration_s']:.0f} s; partial figures in {out}", file=sys.stderr)
        return 1
    md = "\n".join(x for x in (render(res) if "service" in res else "", render_dialplan(res),
                                 render_floors(res)) if x)
    out.with_suffix(".md").write_text(md)
    print()
    print(md)
    print(f"figures: {out} (table: {out.with_suffix('.md')}); took {res['duration_s']:.0f} s")
    if args.profile and (RESULTS / "profile-service.txt").exists():
        print()
        print(profile_summary(RESULTS / "profile-service.txt"))
    if args.update_docs:
        print("docs/performance.md updated" if update_docs(md) else
              "docs/performance.md has no bench markers: not updated")
    return 0


def soak_main(plan: Plan, args) -> int:
    """``--soak SECONDS``: the endurance run alone; prints its table, writes its JSON."""
    from bench import endurance

    rate = None
    for item in args.set:
        key, _, value = item.partition("=")
        if key == "soak_rate":
            rate = float(json.loads(value))
        elif key in Plan.__dataclass_fields__:
            setattr(plan, key, json.loads(value))
    res = asyncio.run(endurance.run_soak(plan, args.soak, rate))
    out = Path(args.out).with_name("endurance.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    if "endurance" not in res:
        print(f"bench: endurance failed; partial figures in {out}", file=sys.stderr)
        return 1
    print()
    print(endurance.render(res["endurance"]))
    print(f"figures: {out}; took {res['duration_s']:.0f} s")
    return 0 if res["endurance"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
