"""The service with ``[dial] bridging = "dialplan"`` as a subject of its own
(decision 0018): its REST calls' callee dialled and bridged by Asterisk in
``[c2d-native-call]``, the service following them through ARI.

After the service's own phases (``bridging = "stasis"``, the default) the run
starts it again with ``dialplan`` as the subject ``service-dialplan``, in a
work directory and journal of its own, and measures what issue 20 compares
with bare Asterisk: its rate ramp (from the Stasis service's capacity up to
bare Asterisk's, as the floor's variants do) and Asterisk's CPU per call,
alternated with bare Asterisk over the same minutes (``Bench.phase_cpu``).
``--set dialplan=false`` leaves it out. The figures go under
``service_dialplan`` of the run's JSON and into the lines of
:func:`render_dialplan`.
"""

from __future__ import annotations

from bench.plan import log
from bench.report import fmt, fmt_ratio
from bench.stats import ratio

#: The subject's name in the run, its journal and its work directory.
NAME = "service-dialplan"
#: Its config over the bench's (``SERVICE_OVERRIDES``): its own Stasis app, so
#: that it never takes the other service's events should both ever run.
OVERRIDES = {"dial": {"bridging": "dialplan"}, "ari": {"app": "click2dial-dialplan"}}


async def dialplan_phases(bench, baseline, res: dict) -> None:
    """The dialplan-bridged service's rate ramp and Asterisk CPU per call, into
    ``res["service_dialplan"]``; the service is stopped afterwards (its CPU
    seconds and memory under ``resources``)."""
    plan = bench.plan
    cap_b = res["asterisk"]["rate"]["capacity_cps"] or None
    start = ((res.get("service") or {}).get("rate") or {}).get("capacity_cps") or None
    log(f"starting the service with [dial] bridging = \"dialplan\" ({NAME})")
    await bench.start_service(NAME, OVERRIDES)
    try:
        out = res["service_dialplan"] = {}
        log(f"{NAME}: rate ramp")
        out["rate"] = await bench.phase_rate(bench.service, max_rate=cap_b, start_rate=start)
        log(f"Asterisk CPU per call at {plan.cpu_rate} calls/s, alternated: asterisk, {NAME}")
        out["asterisk_cpu"] = await bench.phase_cpu([baseline, bench.service], plan.cpu_rate, plan.step_s)
        calls = bench.service.placed
    finally:
        used = await bench.stop_service()
    out["resources"] = {"calls": calls, "cpu_s": used["cpu_s"],
                        "cpu_ms_per_call": round(used["cpu_s"] / calls * 1000, 1) if calls else None,
                        "vmhwm_mb": round(used.get("VmHWM", 0) / 1024, 1)}


def render_dialplan(res: dict) -> str:
    """The dialplan-bridged service's lines beside bare Asterisk of the same run, as
    Markdown; ``""`` when the run did not measure it. Pure."""
    out = res.get("service_dialplan")
    if not out or "rate" not in out:
        return ""
    cap_b = res["asterisk"]["rate"]["capacity_cps"]
    cap = out["rate"]["capacity_cps"]
    cpu = out.get("asterisk_cpu") or {}
    bare, mine = cpu.get("asterisk") or {}, cpu.get(NAME) or {}
    steps = " / ".join(fmt(x) for x in mine.get("asterisk_cpu_ms_per_call", [])) or "—"
    lines = ["| the service, `[dial] bridging = \"dialplan\"` | figure | bare Asterisk | ratio |",
             "|---|---:|---:|---:|",
             f"| sustained calls/s (0 failed, 0 left over) | {'≥ ' if out['rate'].get('ceiling_reached') else ''}"
             f"{fmt(cap)} | {fmt(cap_b)} | {fmt_ratio(ratio(cap, cap_b))} |",
             f"| Asterisk CPU per call at {fmt(mine.get('rate'))} calls/s, alternated (each step) | "
             f"{steps} ms (mean {fmt(mine.get('mean_ms'))}) | {fmt(bare.get('mean_ms'))} ms | "
             f"{fmt_ratio(ratio(mine.get('mean_ms'), bare.get('mean_ms')))} |"]
    used = out.get("resources") or {}
    if used.get("cpu_ms_per_call") is not None:
        lines.append(f"| the service's CPU per call (whole subject) | {fmt(used['cpu_ms_per_call'])} ms | — | — |")
    if mine.get("failed"):
        lines += ["", f"{NAME}: {mine['failed']} of {mine['calls']} calls failed in the CPU steps ({mine['why']})."]
    return "\n".join(lines) + "\n"
