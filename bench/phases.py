"""The phases of a benchmark run, each on the rig of ``bench/rig.py``: the
rate ramp (capacity), the simultaneous-calls ramp, and the set-up latency of
the REST and the header path, service and bare Asterisk interleaved.
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import time

from bench.plan import (AGENT_PORT, BASE_PHONE, BASE_PHONE_PORT, HEADER_PHASES, HEADERS, PHONE, PHONE_PORT,
                        REST_PHASES, TRUNK_PORT, log, next_callee)
from bench.procstat import cpu_seconds
from bench.rig import Rig
from bench.sipplog import uac_index, uas_index
from bench.stats import summary_ms
from testbed.sipp import uac_scenario, uas_scenario


class Bench(Rig):
    """Everything one run owns (``bench.rig.Rig``); the ``phase_*`` methods are the measurements."""

    # --- phases ---------------------------------------------------------
    async def phase_rate(self, subject, max_rate: float | None = None, start_rate: float | None = None) -> dict:
        """Ramp the rate until a step fails, then bisect; the last passing rate is the capacity.

        ``max_rate`` (calls/s): never try more (the ARI floor is capped at
        bare Asterisk's capacity: above it, Asterisk only drowns in ARI
        requests, and a step can then take minutes to drain). ``start_rate``:
        the first step, instead of the plan's (the floor's variants start at
        the floor's capacity)."""
        plan, steps = self.plan, []
        cap = min(plan.max_rate, max_rate) if max_rate else plan.max_rate
        cpu0 = cpu_seconds(self.ast.proc.pid)

        async def try_rate(rate: float) -> bool:
            res = await self.step(subject, rate, max(2, round(rate * plan.step_s)), plan.talk_s,
                                  f"rate {rate:.1f}")
            steps.append(res)
            log(f"  {subject.name} {rate:6.1f} calls/s x {res['calls']}: "
                + ("ok" if res["passed"] else "FAIL " + res["why"])
                + f"  (set-up p99 {res['setup_ms']['p99']} ms, Asterisk CPU {res['asterisk_cpu_s']} s)")
            await asyncio.sleep(1.0)
            return res["passed"]

        lo, hi, rate = 0.0, None, min(start_rate or plan.start_rate, cap)
        while True:
            if await try_rate(rate):
                lo = rate
                if rate >= cap:
                    break
                rate = min(rate * plan.factor, cap)
            else:
                hi = rate
                break
        if lo == 0.0 and hi is not None:       # even the first step failed: go down
            rate = hi / plan.factor
            while rate >= 1 and lo == 0.0:
                if await try_rate(rate):
                    lo = rate
                else:
                    hi, rate = rate, rate / plan.factor
        for _ in range(plan.refine):
            if hi is None or lo == 0.0 or hi / lo < 1.12:
                break
            mid = round(math.sqrt(lo * hi), 1)
            if await try_rate(mid):
                lo = mid
            else:
                hi = mid
        return {"capacity_cps": lo, "first_failed_cps": hi, "steps": steps,
                "ceiling_reached": hi is None,
                "asterisk_cpu_s": round(cpu_seconds(self.ast.proc.pid) - cpu0, 2)}

    async def phase_cpu(self, subjects: list, rate: float, seconds: float, rounds: int = 2) -> dict:
        """Asterisk's CPU per call of each subject at one ``rate`` (calls/s), ``seconds`` of
        calls a step, the subjects alternated (in order, then reversed, ``rounds`` times
        in all) so that each is measured over the same minutes as the others.

        Returns, per subject name, each step's Asterisk CPU per call (ms), their
        mean, and the calls and failures of all its steps."""
        out: dict = {s.name: {"rate": round(rate, 1), "calls": 0, "failed": 0, "why": [],
                              "asterisk_cpu_ms_per_call": []} for s in subjects}
        for r in range(rounds):
            for subject in (subjects if r % 2 == 0 else subjects[::-1]):
                res = await self.step(subject, rate, max(2, round(rate * seconds)), self.plan.talk_s,
                                      f"cpu {subject.name} {r + 1}/{rounds}")
                o = out[subject.name]
                o["calls"] += res["calls"]
                o["failed"] += res["failed"]
                if res["why"]:
                    o["why"].append(res["why"])
                o["asterisk_cpu_ms_per_call"].append(round(res["asterisk_cpu_s"] / res["calls"] * 1000, 1))
                log(f"  {subject.name} at {rate:.1f} calls/s x {res['calls']}: Asterisk "
                    f"{o['asterisk_cpu_ms_per_call'][-1]} ms per call"
                    + ("" if res["passed"] else "  FAIL " + res["why"]))
                await asyncio.sleep(1.0)
        for o in out.values():
            per = o["asterisk_cpu_ms_per_call"]
            o["mean_ms"] = round(sum(per) / len(per), 1) if per else None
            o["why"] = "; ".join(o["why"])[:300]
        return out

    def conc_steps(self, rate: float) -> list[int]:
        """Simultaneous calls to try at set-up ``rate``: doubling, within the time budget.

        A step of N calls takes N/rate to set up and as long to end (each call
        talks until every call is up, plus the hold time), so the budget, not
        the subject, bounds how far the ramp gets; both sides get the same steps.
        """
        plan, out, spent = self.plan, [], 0.0
        n = max(20, round(rate * plan.conc_first_s))
        while True:
            n = min(n, plan.conc_max)
            cost = 2 * n / rate + plan.conc_hold_s + 5
            if out and spent + cost > plan.conc_budget_s:
                break
            out.append(n)
            spent += cost
            if n >= plan.conc_max:
                break
            n *= 2
        return out

    async def phase_concurrency(self, subject, rate: float) -> dict:
        """Ramp the number of calls up at once (talk time covers the whole ramp-up)."""
        steps, best = [], 0
        tried = self.conc_steps(rate)
        for n in tried:
            talk = n / rate + self.plan.conc_hold_s
            res = await self.step(subject, rate, n, talk, f"{n} at once", conc_target=n)
            steps.append(res)
            log(f"  {subject.name} {n} simultaneous (set up at {rate:.1f}/s, talk {talk:.0f} s): "
                + ("ok" if res["passed"] else "FAIL " + res["why"]) + f"  peak {res['peak_connected']}")
            await asyncio.sleep(1.0)
            if not res["passed"]:
                break
            best = n
        return {"max_simultaneous": best, "setup_rate_cps": round(rate, 1), "steps": steps,
                "ceiling_reached": best == tried[-1], "bounded_by": (
                    "failure" if best != tried[-1] else
                    "conc_max" if best >= self.plan.conc_max else "time budget")}

    async def latency_rest(self, subject, rate: float, seconds: float) -> dict:
        """REST (or ARI originate) calls at ``rate`` for ``seconds``: each call's set-up phases."""
        n = max(5, round(rate * seconds))
        agent = await self.peer("agent", AGENT_PORT, uas_scenario())
        trunk = await self.peer("trunk", TRUNK_PORT, uas_scenario(talk_ms=int(self.plan.talk_s * 1000)))
        recs = await self.run_calls(subject, rate, n)
        chans, bridges = await self.drain(recs[-1].sched + self.plan.talk_s + 0.5)
        await self.stop_peers()
        a_idx = uas_index(agent.messages(), callee_in="From")
        t_idx = uas_index(trunk.messages(), callee_in="uri")
        self.drop_peer_files([agent, trunk])
        res = await self.judge(subject, recs, rate, chans, bridges)
        phases: dict[str, list[float]] = {k: [] for k in REST_PHASES}
        for rec in recs:
            a, t = a_idx.get(rec.callee, {}), t_idx.get(rec.callee, {})
            seen = self.obs.bridge_for(rec.callee, rec.call_id)
            if not (rec.sent and a.get("invite") and a.get("ok") and t.get("invite") and t.get("ok")
                    and seen and seen.connected_at):
                continue
            p1, p2 = a["invite"] - rec.sent, t["invite"] - a["ok"]
            p3 = seen.connected_at - t["ok"]
            for k, v in zip(REST_PHASES, (p1, p2, p3, p1 + p2 + p3, rec.done - rec.sent)):
                phases[k].append(v)
        self.obs.forget()
        return {"calls": n, "failed": res["failed"], "why": res["why"], "leftover_channels": chans,
                "phases": phases}

    async def latency_header(self, phone: str, port: int, rate: float, seconds: float) -> dict:
        """A SIPp phone calls at ``rate``: phone INVITE → callee INVITE, callee 200 → bridged."""
        n = max(5, round(rate * seconds))
        callees = [next_callee() for _ in range(n)]
        inf_dir = self.root / "tmp/c2d-bench"
        inf_dir.mkdir(parents=True, exist_ok=True)
        inf = inf_dir / f"callees-{os.getpid()}-{phone}.csv"
        inf.write_text("SEQUENTIAL\n" + "".join(f"{c};\n" for c in callees))
        trunk = await self.peer("trunk", TRUNK_PORT, uas_scenario(talk_ms=int(self.plan.talk_s * 1000)))
        scen = uac_scenario(target="[field0]", from_user=phone, headers=HEADERS, wait_bye=True)
        t_first = time.time()
        ph = await self.peer("phone", port, scen, uac_target="127.0.0.1:5060", calls=n, rate=rate,
                             extra_args=["-inf", "/" + str(inf.relative_to(self.root))])
        if phone == PHONE:
            self.header_calls += n
        try:
            code = await asyncio.to_thread(ph.wait, n / rate + self.plan.talk_s + 60)
        except subprocess.TimeoutExpired:
            code = None
        chans, bridges = await self.drain(t_first + n / rate + self.plan.talk_s + 0.5)
        await self.stop_peers()
        p_idx = uac_index(ph.messages())
        t_idx = uas_index(trunk.messages(), callee_in="uri")
        self.drop_peer_files([trunk, ph])
        inf.unlink(missing_ok=True)
        phases: dict[str, list[float]] = {k: [] for k in HEADER_PHASES}
        connected = 0
        for c in callees:
            p, t, seen = p_idx.get(c, {}), t_idx.get(c, {}), self.obs.bridge_for(c)
            if seen and seen.connected_at:
                connected += 1
            if not (p.get("invite") and t.get("invite") and t.get("ok") and seen and seen.connected_at):
                continue
            p1, p2 = t["invite"] - p["invite"], seen.connected_at - t["ok"]
            for k, v in zip(HEADER_PHASES, (p1, p2, p1 + p2)):
                phases[k].append(v)
        self.obs.forget()
        return {"calls": n, "failed": n - connected, "why": f"SIPp exit {code}" if code else "",
                "leftover_channels": chans, "phases": phases}

    async def phase_latency(self, baseline, rate: float, rounds: int) -> dict:
        """Set-up latency of both paths, service and bare Asterisk, at the same ``rate``.

        The four runs (service REST, Asterisk originate, service header path,
        Asterisk phone) are cut into ``rounds`` short chunks and interleaved,
        so a burst of load from elsewhere on the machine hits both sides alike.
        CPU time of the service and of Asterisk is counted per call here, at a
        steady half-capacity load.
        """
        chunk = self.plan.latency_s / rounds
        runs = [("service", "rest"), ("asterisk", "rest"), ("service", "header"), ("asterisk", "header")]
        acc = {(side, path): {"calls": 0, "failed": 0, "leftover_channels": 0, "why": [],
                              "phases": {}, "service_cpu_s": 0.0, "asterisk_cpu_s": 0.0}
               for side, path in runs}
        for r in range(rounds):
            order = runs if r % 2 == 0 else [runs[1], runs[0], runs[3], runs[2]]
            for side, path in order:
                svc0 = cpu_seconds(self.svc.proc.pid)
                ast0 = cpu_seconds(self.ast.proc.pid)
                if path == "rest":
                    part = await self.latency_rest(self.service if side == "service" else baseline,
                                                   rate, chunk)
                else:
                    phone, port = (PHONE, PHONE_PORT) if side == "service" else (BASE_PHONE, BASE_PHONE_PORT)
                    part = await self.latency_header(phone, port, rate, chunk)
                a = acc[(side, path)]
                a["service_cpu_s"] += cpu_seconds(self.svc.proc.pid) - svc0
                a["asterisk_cpu_s"] += cpu_seconds(self.ast.proc.pid) - ast0
                for k in ("calls", "failed", "leftover_channels"):
                    a[k] += part[k]
                if part["why"]:
                    a["why"].append(part["why"])
                for k, v in part["phases"].items():
                    a["phases"].setdefault(k, []).extend(v)
            log(f"  round {r + 1}/{rounds}: " + ", ".join(
                f"{side} {path} {acc[(side, path)]['calls']} calls" for side, path in runs))
        out: dict = {"service": {}, "asterisk": {}}
        for (side, path), a in acc.items():
            out[side][path] = {
                "rate": round(rate, 1), "calls": a["calls"], "failed": a["failed"],
                "leftover_channels": a["leftover_channels"], "why": "; ".join(a["why"])[:300],
                "phases_ms": {k: summary_ms(v) for k, v in a["phases"].items()},
                "asterisk_cpu_ms_per_call": round(a["asterisk_cpu_s"] / a["calls"] * 1000, 2),
            }
            if side == "service":
                out[side][path]["service_cpu_ms_per_call"] = round(a["service_cpu_s"] / a["calls"] * 1000, 2)
        self.note_idle_rss("latency")
        return out

