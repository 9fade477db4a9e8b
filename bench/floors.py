"""The ARI floor and its variants in a run: what Asterisk allows designs other than the service's.

``--set floor_variants='["local","native","native-local"]'`` adds, after
the floor's own rate ramp, a ramp of each variant (``bench/floor.py``
``local``: the service's Local legs; ``bench/native.py``: Asterisk bridging
in the dialplan, followed through ARI, with the agent leg a PJSIP channel or,
``native-local``, the service's Local agent leg), each from the floor's
capacity up to bare Asterisk's,
then Asterisk's CPU per call of bare Asterisk, the floor, every variant and
the service at one rate (``--set cpu_rate=R``), alternated
(``Bench.phase_cpu``).
``--set service=false`` stops the run there (a trial of the designs, no
service). The figures go under ``floor_variants`` and ``asterisk_cpu`` of
the run's JSON and into a table of their own (:func:`render_floors`).
"""

from __future__ import annotations

from bench.floor import AriFloor
from bench.native import NativeBridging
from bench.plan import AGENT, CLID, log
from bench.report import fmt, fmt_ratio
from bench.stats import ratio
from testbed.asterisk import ARI_PASSWORD, ARI_USER

#: The variants ``floor_variants`` may name, and what each is.
VARIANTS = {"local": "the floor with the service's Local legs (decision 0014)",
            "native": "Asterisk bridging in the dialplan, followed through ARI",
            "native-local": "the same, the agent leg a Local channel (two CDR rows per call)"}


def check_variants(names) -> list[str]:
    """The variants of ``floor_variants``, in order; raises ValueError for an unknown
    name or a repeated one (the message lists the known ones). Pure."""
    names = list(names or ())
    bad = [n for n in names if n not in VARIANTS]
    if bad or len(set(names)) != len(names):
        raise ValueError(f"floor_variants: {names!r}: each at most once, of {', '.join(VARIANTS)}")
    return names


def subjects(ari, variants: list[str]) -> list:
    """The floor, then one subject per variant, not started."""
    args = (ari, "127.0.0.1", 8088, (ARI_USER, ARI_PASSWORD), AGENT, CLID)
    out = [AriFloor(*args)]
    for name in variants:
        out.append(AriFloor(*args, variant="local") if name == "local"
                   else NativeBridging(*args, local=name == "native-local"))
    return out


async def floor_phases(bench, baseline, res: dict) -> None:
    """The floor's ramp, the variants' ramps and the alternated CPU phase, into ``res``."""
    plan = bench.plan
    variants = check_variants(plan.floor_variants)
    floors = subjects(bench.ari, variants)
    cap_b = res["asterisk"]["rate"]["capacity_cps"] or None
    for f in floors:
        await f.start()
    try:
        log("ARI floor (a minimal Stasis app, no service): rate ramp")
        res["ari_floor"] = {"rate": await bench.phase_rate(floors[0], max_rate=cap_b)}
        # From the floor's capacity up: a design that costs Asterisk more than the
        # floor, started at bare Asterisk's rate, can leave it too swamped to clear.
        start = res["ari_floor"]["rate"]["capacity_cps"] or None
        for name, f in zip(variants, floors[1:]):
            log(f"ARI floor variant {name} ({VARIANTS[name]}): rate ramp")
            res.setdefault("floor_variants", {})[name] = {
                "rate": await bench.phase_rate(f, max_rate=cap_b, start_rate=start)}
        if variants:
            measured = [baseline, *floors]
            if plan.service:      # the service's Asterisk cost over the same minutes
                log("starting the service")
                await bench.start_service()
                measured.append(bench.service)
            log(f"Asterisk CPU per call at {plan.cpu_rate} calls/s, alternated: "
                + ", ".join(s.name for s in measured))
            res["asterisk_cpu"] = await bench.phase_cpu(measured, plan.cpu_rate, plan.step_s)
        # which requests the apps saw fail (what a "never bridged" call met)
        res["ari_floor"]["refused"] = dict(floors[0].refused)
        for name, f in zip(variants, floors[1:]):
            res["floor_variants"][name]["errors"] = f.errors
            if hasattr(f, "refused"):
                res["floor_variants"][name]["refused"] = dict(f.refused)
            if hasattr(f, "observed"):
                res["floor_variants"][name]["observed"] = dict(f.observed)
                res["floor_variants"][name]["placed"] = f.placed
    finally:
        for f in floors:
            await f.stop()


def render_floors(res: dict) -> str:
    """The table of the floor and its variants (capacity, Asterisk CPU per call), as Markdown;
    ``""`` when the run had no variants."""
    if not res.get("floor_variants"):
        return ""
    cap_b = res["asterisk"]["rate"]["capacity_cps"]
    cpu = res.get("asterisk_cpu") or {}
    cpu_b = (cpu.get("asterisk") or {}).get("mean_ms")
    rows = [("bare Asterisk (originate + dialplan Dial)", "asterisk", res["asterisk"]["rate"]),
            ("ARI floor (PJSIP legs, bridged in Stasis)", "ari-floor", res["ari_floor"]["rate"])]
    for name, v in res["floor_variants"].items():
        rows.append((f"{name}: {VARIANTS[name]}", name if name.startswith("native") else f"ari-floor-{name}",
                     v["rate"]))
    if "service" in cpu:
        rows.append(("the service (REST calls)", "service", (res.get("service") or {}).get("rate")
                     or {"capacity_cps": None}))
    rate = next((c.get("rate") for c in cpu.values()), None)
    lines = ["| design | sustained calls/s | ÷ bare | Asterisk CPU per call "
             f"at {fmt(rate)} calls/s (each step) | mean ÷ bare |", "|---|---:|---:|---:|---:|"]
    for label, key, r in rows:
        c = cpu.get(key) or {}
        steps = " / ".join(fmt(x) for x in c.get("asterisk_cpu_ms_per_call", [])) or "—"
        cap = f"{'≥ ' if r.get('ceiling_reached') else ''}{fmt(r['capacity_cps'])}"
        lines.append(f"| {label} | {cap} | {fmt_ratio(ratio(r['capacity_cps'], cap_b))} | "
                     f"{steps} ms (mean {fmt(c.get('mean_ms'))}) | {fmt_ratio(ratio(c.get('mean_ms'), cpu_b))} |")
    notes = []
    for name, v in res["floor_variants"].items():
        if v.get("observed"):
            seen = ", ".join(f"{k} {n}" for k, n in sorted(v["observed"].items()))
            notes.append(f"{name}: the app followed {v.get('placed')} calls and saw {seen}.")
    for key, c in cpu.items():
        if c.get("failed"):
            notes.append(f"{key}: {c['failed']} of {c['calls']} calls failed in the CPU steps ({c['why']}).")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"
