"""The benchmark's report: the machine it ran on, the Markdown tables of a
run's figures, and the figures put into docs/performance.md.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from bench.plan import REPO

DOC = REPO / "docs/performance.md"
DOC_BEGIN, DOC_END = "<!-- bench:begin -->", "<!-- bench:end -->"


def machine(asterisk_version: str) -> dict:
    """The machine of the run: cores, CPU model, RAM (GB), kernel, Python, ``asterisk_version``
    and the load average at the start (missing /proc files leave a field empty)."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    load = os.getloadavg()
    return {"nproc": os.cpu_count(), "cpu_model": model, "ram_gb": round(mem_kb / 1024 / 1024, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "asterisk": asterisk_version, "load_avg_at_start": [round(x, 2) for x in load]}


def fmt(v, unit="") -> str:
    """A figure for the tables, then ``unit``: ``—`` for None; a float with one decimal below 1,000, none above."""
    if v is None:
        return "—"
    if isinstance(v, float):
        v = f"{v:.1f}" if abs(v) < 1000 else f"{v:.0f}"
    return f"{v}{unit}"


def fmt_ratio(v) -> str:
    """A ratio for the tables, two decimals (``—`` for None)."""
    return "—" if v is None else f"{v:.2f}"


def render(res: dict) -> str:
    """The report as Markdown tables (also printed)."""
    d, m = res["derived"], res["machine"]
    svc, ast = res["service"], res["asterisk"]
    lines = [f"Run {res['started']} ({res['mode']}, {res['duration_s']:.0f} s) on {m['nproc']} × "
             f"{m['cpu_model']}, {m['ram_gb']} GB RAM, Asterisk {m['asterisk']}, Python {m['python']}; "
             f"load average at start {m['load_avg_at_start'][0]}.", ""]
    lines += ["| capacity | service | bare Asterisk | ratio | target |", "|---|---:|---:|---:|---|"]
    cs, cb = svc["rate"], ast["rate"]

    def cap(c, key):
        return f"{'≥ ' if c.get('ceiling_reached') else ''}{fmt(c[key])}"
    lines.append(f"| sustained calls/s (0 failed, 0 left over) | {cap(cs, 'capacity_cps')} | "
                 f"{cap(cb, 'capacity_cps')} | {fmt_ratio(d['capacity_ratio'])} | — |")
    if res.get("ari_floor"):
        cf = res["ari_floor"]["rate"]
        lines.append(f"| sustained calls/s of the ARI floor (a minimal Stasis app, bench/floor.py) | "
                     f"{cap(cf, 'capacity_cps')} | {cap(cb, 'capacity_cps')} | {fmt_ratio(d.get('floor_ratio'))} "
                     f"| — |")
        lines.append(f"| the service against the ARI floor | {cap(cs, 'capacity_cps')} | "
                     f"{cap(cf, 'capacity_cps')} (floor) | {fmt_ratio(d.get('service_to_floor_ratio'))} | ≥ 0.9 "
                     f"{'✔' if d['targets']['capacity_at_least_90pct_of_floor'] else '✘'} |")
    lines.append(f"| simultaneous connected calls | {cap(svc['concurrency'], 'max_simultaneous')} | "
                 f"{cap(ast['concurrency'], 'max_simultaneous')} | {fmt_ratio(d['simultaneous_ratio'])} | ≥ 0.9 "
                 f"{'✔' if d['targets']['simultaneous_at_least_90pct_of_asterisk'] else '✘'} |")
    lines.append("")
    names = {"request_to_agent_invite": "request → agent's INVITE",
             "agent_answer_to_callee_invite": "agent's 200 OK → callee's INVITE",
             "invite_to_callee_invite": "phone's INVITE → callee's INVITE",
             "callee_answer_to_bridged": "callee's 200 OK → both in the bridge",
             "total": "**set-up total** (sum of the phases)",
             "request_answered": "request → HTTP answer"}
    rate = svc["latency"]["rest"]["rate"]
    sides = [("service", cs), ("bare Asterisk", cb)]
    if res.get("ari_floor"):
        sides.append(("ARI floor", res["ari_floor"]["rate"]))
    for side, c in sides:
        failed = [st for st in c["steps"] if not st["passed"]]
        if failed:
            worst = min(failed, key=lambda st: st["rate"])
            lines.append(f"{side}: the step at {fmt(worst['rate'])} calls/s failed: {worst['why']}.  ")
    why_rate = ("fixed by the plan" if (res.get("plan") or {}).get("latency_rate")
                else "half of the service's capacity")
    lines += ["", f"Set-up latency in ms at {fmt(rate)} calls/s ({why_rate}), "
              "the service and bare Asterisk at the same rate, interleaved:", "",
              "| path | phase | median | p95 | p99 | Asterisk median | p95 | p99 | added median | added p99 |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for path, label in (("rest", "REST"), ("header", "header (SIP phone)")):
        s, b = svc["latency"][path]["phases_ms"], ast["latency"][path]["phases_ms"]
        for phase, st in s.items():
            bt = b.get(phase, {})
            add = d["added_latency_ms"][path].get(phase, {})
            lines.append(f"| {label} | {names.get(phase, phase)} | {fmt(st['median'])} | {fmt(st['p95'])} | "
                         f"{fmt(st['p99'])} | {fmt(bt.get('median'))} | {fmt(bt.get('p95'))} | "
                         f"{fmt(bt.get('p99'))} | {fmt(add.get('median'))} | {fmt(add.get('p99'))} |")
    lines.append("")
    lines.append(f"Worst added set-up p99: {fmt(d['worst_added_p99_ms'])} ms (target ≤ 10 ms "
                 f"{'✔' if d['targets']['added_setup_p99_at_most_10ms'] else '✘'}). "
                 f"Samples: REST {svc['latency']['rest']['phases_ms']['total']['n']}, "
                 f"header {svc['latency']['header']['phases_ms']['total']['n']} calls.")
    r = svc["resources"]
    a = r["asterisk_cpu_s_per_1000"]
    flat = {True: "flat ✔", False: "growing ✘"}.get(r.get("memory_flat"), "—")
    lines += ["", "| resources | value |", "|---|---:|",
              f"| calls handled by the service in the run | {r['calls']} |",
              f"| service CPU (user + system) per 1,000 calls, steady at {fmt(rate)} calls/s: REST / header path | "
              f"{fmt(r['cpu_s_per_1000_rest_steady'])} s / {fmt(r['cpu_s_per_1000_header_steady'])} s "
              f"(target ≤ 4 s {'✔' if d['targets'].get('service_cpu_at_most_4ms_per_call') else '✘'}) |",
              f"| service CPU per 1,000 calls over the whole run (ramps to overload included) | "
              f"{fmt(r['cpu_s_per_1000_calls'])} s |",
              f"| Asterisk CPU per 1,000 calls, REST path: with the service / bare (originate + dialplan) | "
              f"{fmt(a['service_rest'])} s / {fmt(a['asterisk_rest'])} s "
              f"({fmt_ratio((d.get('asterisk_cpu_ratio') or {}).get('rest'))}) |",
              f"| Asterisk CPU per 1,000 calls, header path: with the service / bare (dialplan) | "
              f"{fmt(a['service_header'])} s / {fmt(a['asterisk_header'])} s "
              f"({fmt_ratio((d.get('asterisk_cpu_ratio') or {}).get('header'))}; target ≤ 1.2× on both "
              f"{'✔' if d['targets'].get('asterisk_cpu_at_most_1_2x_bare') else '✘'}) |",
              f"| service peak memory (VmHWM) | {fmt(r['vmhwm_mb'])} MB |",
              f"| service RSS at rest, after the first step → after the last (warm-up included) | "
              f"{fmt(r.get('idle_rss_first_mb'))} → {fmt(r.get('idle_rss_last_mb'))} MB "
              f"({fmt(r.get('idle_rss_growth_kb'))} kB over {fmt(r.get('idle_rss_growth_over_calls'))} calls) |"]
    if svc.get("soak"):
        so = svc["soak"]
        lines += [f"| soak: {so['calls']} calls at {fmt(so['rate'])} calls/s, in two halves | "
                  f"{'ok' if so['passed'] else 'FAIL ' + so['why']} |",
                  f"| service RSS at rest over the soak's second half | "
                  f"{fmt(r.get('soak_rss_first_mb'))} → {fmt(r.get('soak_rss_last_mb'))} MB "
                  f"({fmt(r.get('soak_rss_growth_kb'))} kB over {fmt(r.get('soak_rss_over_calls'))} calls, "
                  f"{fmt(r.get('soak_rss_bytes_per_call'))} B/call: {flat}) |"]
    return "\n".join(lines) + "\n"


def update_docs(md: str) -> bool:
    """Replace the figures between the bench markers of docs/performance.md."""
    if not DOC.exists():
        return False
    text = DOC.read_text()
    if DOC_BEGIN not in text or DOC_END not in text:
        return False
    head, rest = text.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    DOC.write_text(head + DOC_BEGIN + "\n" + md + DOC_END + tail)
    return True

