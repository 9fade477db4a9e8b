"""Endurance: calls at half capacity for a long time, resources sampled and judged flat.

A service that leaks one file descriptor, one thread or a few kilobytes per
call works for an hour and stops after days (field report C35). The
endurance run places calls through the service at a steady rate, in chunks
(each chunk: its calls, then Asterisk drained to no channel and no bridge),
and after each chunk samples, with nothing in flight:

* the service's open file descriptors, threads and RSS;
* Asterisk's open file descriptors, threads and RSS;
* the soft limit on open files of each.

The first chunk warms up (pools, caches, arenas); from the end of it to the
end of the run the figures must be flat: descriptors and threads back to
where they were (a small allowance for sockets that close lazily), RSS
growing by less than 2 % for the service. ``python -m bench.run --soak
SECONDS`` runs it on its own; a plan with ``endurance_s`` runs it after the
other phases.
"""

from __future__ import annotations

import time

from bench.procstat import fd_count, fd_limit, memory_kb, thread_count

#: What may differ between the first sample after warm-up and the last.
FD_SLACK = {"service": 4, "asterisk": 16}
THREAD_SLACK = {"service": 2, "asterisk": 8}
SERVICE_RSS_GROWTH = 0.02


def snapshot(bench, label: str) -> dict:
    """Resources of the service and of Asterisk now, with the calls placed so far."""
    out: dict = {"after": label, "calls": bench.service_calls(), "t_s": round(time.time() - bench.t_start, 1)}
    for side, proc in (("service", bench.svc.proc), ("asterisk", bench.ast.proc)):
        pid = proc.pid
        out[side] = {"fds": fd_count(pid), "threads": thread_count(pid),
                     "rss_kb": memory_kb(pid).get("VmRSS"), "fd_limit": fd_limit(pid)}
    return out


def judge(samples: list[dict]) -> dict:
    """Flat or not, from the first sample after warm-up (``samples[1]``) to the last."""
    if len(samples) < 3:
        return {"flat": None, "why": "too short: at least two chunks after the warm-up are needed"}
    first, last = samples[1], samples[-1]
    why = []
    for side in ("service", "asterisk"):
        a, b = first[side], last[side]
        if a["fds"] is not None and b["fds"] is not None and b["fds"] - a["fds"] > FD_SLACK[side]:
            why.append(f"{side} fds {a['fds']} → {b['fds']}")
        if a["threads"] is not None and b["threads"] - a["threads"] > THREAD_SLACK[side]:
            why.append(f"{side} threads {a['threads']} → {b['threads']}")
    a, b = first["service"]["rss_kb"], last["service"]["rss_kb"]
    if a and b and b - a > SERVICE_RSS_GROWTH * a:
        why.append(f"service RSS {a} → {b} kB")
    return {"flat": not why, "why": "; ".join(why)}


async def endurance(bench, rate: float, seconds: float, chunk_s: float = 30.0) -> dict:
    """Run ``seconds`` of calls at ``rate`` calls/s through the service in chunks of ``chunk_s``.

    ``bench``: a started ``bench.phases.Bench`` with its service running.
    Returns the chunks' results, the samples and the verdict.
    """
    chunks = max(3, round(seconds / chunk_s))
    per_chunk = max(1, round(rate * seconds / chunks))
    samples = [snapshot(bench, "start")]
    steps = []
    for i in range(1, chunks + 1):
        step = await bench.step(bench.service, rate, per_chunk, bench.plan.talk_s, f"endurance {i}/{chunks}")
        steps.append({k: step[k] for k in ("calls", "failed", "passed", "why", "leftover_channels",
                                            "leftover_bridges")})
        samples.append(snapshot(bench, f"chunk {i}"))
    verdict = judge(samples)
    return {"rate": round(rate, 1), "seconds": seconds, "chunks": chunks,
            "calls": sum(s["calls"] for s in steps), "failed": sum(s["failed"] for s in steps),
            "passed": all(s["passed"] for s in steps) and bool(verdict["flat"]),
            "steps": steps, "samples": samples, **verdict}


def render(e: dict) -> str:
    """The endurance figures as a Markdown table."""
    first, warm, last = e["samples"][0], e["samples"][1], e["samples"][-1]
    lines = [f"Endurance: {e['calls']} calls at {e['rate']} calls/s over {e['chunks']} chunks "
             f"({last['t_s'] - first['t_s']:.0f} s), {e['failed']} failed; "
             f"resources flat: {'yes' if e['flat'] else 'NO — ' + e['why']}.", "",
             "| | at start | after warm-up | at the end |", "|---|---:|---:|---:|",
             f"| calls placed | {first['calls']} | {warm['calls']} | {last['calls']} |"]
    for side in ("service", "asterisk"):
        for key, name in (("fds", "open fds"), ("threads", "threads"), ("rss_kb", "RSS, MB")):
            vals = [s[side][key] for s in (first, warm, last)]
            if key == "rss_kb":
                vals = [f"{v / 1024:.1f}" if v else "—" for v in vals]
            lines.append(f"| {side}: {name} | " + " | ".join(str(v) for v in vals) + " |")
        lines.append(f"| {side}: soft limit of open files | {last[side]['fd_limit'] or 'unlimited'} | | |")
    return "\n".join(lines) + "\n"


async def run_soak(plan, seconds: float, rate: float | None = None) -> dict:
    """``python -m bench.run --soak SECONDS``: Asterisk and the service, the service's rate
    ramp (skipped when ``rate`` is given), then :func:`endurance` at half the capacity found."""
    import asyncio
    import shutil
    import traceback
    from datetime import datetime, timezone

    from bench.phases import Bench
    from bench.plan import RESULTS, log
    from bench.report import machine
    from testbed.root import ensure_root

    root = await asyncio.to_thread(ensure_root, log)
    workdir = RESULTS / "work"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    bench = Bench(plan, root, workdir)
    res: dict = {"started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "mode": "soak"}
    t0 = time.time()
    try:
        await bench.start()
        info = bench.ast.ari.get("/asterisk/info").json()
        res["machine"] = machine(info.get("system", {}).get("version", "?"))
        await bench.start_service()
        if rate is None:
            log("service: rate ramp (to find half capacity)")
            ramp = await bench.phase_rate(bench.service)
            res["rate_ramp"] = ramp
            rate = max(1.0, (ramp["capacity_cps"] or plan.start_rate) / 2)
        log(f"service: endurance, {seconds:.0f} s at {rate:.1f} calls/s")
        res["endurance"] = await endurance(bench, rate, seconds)
        log("  endurance: " + ("ok" if res["endurance"]["passed"] else "FAIL " + res["endurance"]["why"]))
    except Exception:  # noqa: BLE001 - keep what was measured, say what broke
        res["error"] = traceback.format_exc()
        log("the endurance run failed:\n" + res["error"])
    finally:
        await bench.stop()
    res["duration_s"] = round(time.time() - t0, 1)
    return res
