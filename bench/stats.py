"""The benchmark's statistics: percentiles and latency summaries, the figures
derived from a run (ratios to bare Asterisk, added latency, target verdicts)
and the trend of the service's memory at rest.
"""

from __future__ import annotations

import math


def pct(values: list[float], p: float) -> float | None:
    """The ``p``-th percentile (nearest rank) of ``values``."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def summary_ms(values_s: list[float]) -> dict:
    """n, median, p95, p99, max of ``values_s`` (seconds), in milliseconds."""
    ms = [v * 1000 for v in values_s]
    out = {"n": len(ms)}
    for name, p in (("median", 50), ("p95", 95), ("p99", 99), ("max", 100)):
        v = pct(ms, p)
        out[name] = None if v is None else round(v, 2)
    return out


def ratio(a, b) -> float | None:
    """``a / b`` rounded to two decimals; None when ``a`` is None or ``b`` is 0 or None."""
    return round(a / b, 2) if a is not None and b else None



def derive(res: dict) -> dict:
    """Ratios, added latency and target verdicts from the raw figures."""
    out: dict = {}
    cap_s, cap_b = res["service"]["rate"]["capacity_cps"], res["asterisk"]["rate"]["capacity_cps"]
    con_s = res["service"]["concurrency"]["max_simultaneous"]
    con_b = res["asterisk"]["concurrency"]["max_simultaneous"]
    out["capacity_ratio"] = ratio(cap_s, cap_b)
    if res.get("ari_floor"):
        cap_f = res["ari_floor"]["rate"]["capacity_cps"]
        out["floor_ratio"] = ratio(cap_f, cap_b)             # what ARI itself allows
        out["service_to_floor_ratio"] = ratio(cap_s, cap_f)  # what the service keeps of it
    out["simultaneous_ratio"] = ratio(con_s, con_b)
    added = {}
    for path in ("rest", "header"):
        s = res["service"]["latency"][path]["phases_ms"]
        b = res["asterisk"]["latency"][path]["phases_ms"]
        added[path] = {}
        for phase in s:
            if phase not in b:
                continue
            added[path][phase] = {q: (round(s[phase][q] - b[phase][q], 2)
                                      if s[phase][q] is not None and b[phase][q] is not None else None)
                                  for q in ("median", "p95", "p99")}
    out["added_latency_ms"] = added
    worst_p99 = max((v["total"]["p99"] for v in added.values() if v.get("total", {}).get("p99") is not None),
                    default=None)
    cpu = res["service"]["resources"]
    # Issue 20's targets: capacity against the ARI floor (what any Stasis
    # design can reach), the service's CPU per call (s per 1,000 calls = ms
    # per call) and Asterisk's own CPU per call against bare Asterisk.
    per_call = [cpu.get("cpu_s_per_1000_rest_steady"), cpu.get("cpu_s_per_1000_header_steady")]
    ast_cpu = cpu.get("asterisk_cpu_s_per_1000") or {}
    ast_ratios = [ratio(ast_cpu.get(f"service_{p}"), ast_cpu.get(f"asterisk_{p}")) for p in ("rest", "header")]
    out["asterisk_cpu_ratio"] = dict(zip(("rest", "header"), ast_ratios))
    out["targets"] = {
        "capacity_at_least_90pct_of_floor": (out.get("service_to_floor_ratio") or 0) >= 0.9,
        "simultaneous_at_least_90pct_of_asterisk": (out["simultaneous_ratio"] or 0) >= 0.9,
        "added_setup_p99_at_most_10ms": worst_p99 is not None and worst_p99 <= 10,
        "service_cpu_at_most_4ms_per_call": all(v is not None and v <= 4 for v in per_call),
        "asterisk_cpu_at_most_1_2x_bare": all(v is not None and v <= 1.2 for v in ast_ratios),
        "memory_flat": cpu.get("memory_flat"),
    }
    out["worst_added_p99_ms"] = worst_p99
    return out


def memory_trend(idle: list[dict]) -> dict:
    """How the service's RSS at rest moved: over the whole run, and over the soak.

    ``idle``: ``{"after": step label, "calls": calls so far, "rss_kb": VmRSS}``
    noted after every step. The whole run (from the first step on) includes
    warm-up and the simultaneous-calls steps, which leave the allocator's
    arenas larger; it is reported, not judged. The verdict is the soak's:
    two equal halves at the same steady rate, after every other phase, and
    the RSS at rest after the second half against after the first. Flat: it
    grew by less than 0.5 % (about 350 kB at 70 MB; a leak of 1 kB per
    call shows as about 0.5 MB per 500 calls). ``memory_flat`` is None
    without a soak (``--set soak_s=0``).
    """
    out: dict = {"memory_flat": None}
    pts = [(p["calls"], p["rss_kb"]) for p in idle[1:] if p["rss_kb"]]
    if len(pts) >= 2 and pts[-1][0] > pts[0][0]:
        out.update(idle_rss_growth_kb=pts[-1][1] - pts[0][1], idle_rss_growth_over_calls=pts[-1][0] - pts[0][0],
                   idle_rss_first_mb=round(pts[0][1] / 1024, 1), idle_rss_last_mb=round(pts[-1][1] / 1024, 1))
    soak = [(p["calls"], p["rss_kb"]) for p in idle if p["after"].startswith("soak") and p["rss_kb"]]
    if len(soak) >= 2 and soak[-1][0] > soak[0][0]:
        growth, calls = soak[-1][1] - soak[0][1], soak[-1][0] - soak[0][0]
        out.update(memory_flat=growth < 0.005 * soak[0][1], soak_rss_growth_kb=growth, soak_rss_over_calls=calls,
                   soak_rss_bytes_per_call=round(growth * 1024 / calls),
                   soak_rss_first_mb=round(soak[0][1] / 1024, 1), soak_rss_last_mb=round(soak[-1][1] / 1024, 1))
    return out

