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
import itertools
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from bench.floor import AriFloor
from bench.httpclient import HttpError, HttpPool
from bench.observer import Observer
from bench.procstat import cpu_seconds, memory_kb
from bench.receiver import Receiver
from platforma_c2d.store.journal import calls
from tests.bench.asterisk import ARI_PASSWORD, ARI_USER, OVERLAY_DIR, AsteriskBench
from tests.bench.root import ensure_root
from tests.bench.service import ServiceProcess
from tests.bench.sipp import SippPeer, uac_scenario, uas_scenario

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench-results"
DOC = REPO / "docs/performance.md"
DOC_BEGIN, DOC_END = "<!-- bench:begin -->", "<!-- bench:end -->"

AGENT, AGENT_PORT = "1001", 5071       # agent phone (SIPp UAS) of the REST path
TRUNK_PORT = 5070                      # the PSTN trunk (SIPp UAS): every callee
PHONE, PHONE_PORT = "2001", 5081       # browser stand-in (SIPp UAC), context c2d-webrtc
BASE_PHONE, BASE_PHONE_PORT = "2002", 5082   # bench-only phone, context c2d-bench (baseline)
CLID = "0215550199"
BENCH_CONTEXT = "c2d-bench"
HEADERS = [f"X-Platforma-Outbound-ID: {CLID}", "X-Platforma-Call-Ref: bench-hdr"]

# The baseline: the dialplan alone does what the service does for a call.
EXTENSIONS_LOCAL = f"""; Written by bench/run.py (benchmark only): bare Asterisk connects the
; agent (originated by ARI into this context) or a phone (endpoint 2002) to
; the callee through the trunk, with the CLID — no Stasis app involved.
[{BENCH_CONTEXT}]
exten => _X.,1,Set(CALLERID(num)={CLID})
 same => n,Dial(PJSIP/${{EXTEN}}@trunk,45)
 same => n,Hangup()
"""

PJSIP_BASE_PHONE = f"""
; Written by bench/run.py (benchmark only): the baseline of the header path,
; a phone whose calls go straight to [{BENCH_CONTEXT}].
[{BASE_PHONE}](bench-agent)
context={BENCH_CONTEXT}
aors={BASE_PHONE}
callerid="Agent {BASE_PHONE}" <{BASE_PHONE}>
[{BASE_PHONE}](c2d-agent-aor)
contact=sip:{BASE_PHONE}@127.0.0.1:{BASE_PHONE_PORT}
qualify_frequency=0
[{BASE_PHONE}]
type=identify
endpoint={BASE_PHONE}
match=127.0.0.1:{BASE_PHONE_PORT}
"""

#: ``--store``: the journal's URL (None: the SQLite file in the service's directory)
STORE: dict[str, str | None] = {"url": None}

SERVICE_OVERRIDES = {
    "limits": {"max_active_calls_per_agent": 100000, "max_active_calls": 0,
               "max_active_calls_per_token": 0, "writes_per_minute": 0, "reads_per_minute": 0},
    "log": {"level": "INFO", "format": "json"},
    "dial": {"agent_ring_timeout_s": 30, "callee_ring_timeout_s": 45, "tone_s": 1,
             "max_call_duration_s": 3600},
}


@dataclass
class Plan:
    """How long and how hard each phase runs."""

    step_s: float            # length of one rate step (calls are sent for this long)
    start_rate: float        # first rate step, calls/s
    factor: float            # next step = rate * factor, until a step fails
    refine: int              # then this many bisection steps between pass and fail
    max_rate: float
    talk_s: float            # talk time of the rate steps and latency runs
    latency_s: float         # calls of each latency run: this many seconds at half capacity
    latency_rounds: int      # ... cut into this many chunks, service and Asterisk interleaved
    conc_first_s: float      # first simultaneous-calls step: this many seconds of calls
    conc_max: int            # most simultaneous calls tried (RTP ports 10000-20000: 2,500 calls)
    conc_budget_s: float     # time for the simultaneous-calls ramp of each side
    conc_hold_s: float       # all calls up together for this long
    max_setup_s: float       # "sustained": p99 of request → bridged at most this
    soak_s: float = 0        # then a run at half capacity, in two halves, for memory (0: none)
    floor: bool = True       # also ramp the ARI floor (bench/floor.py)
    latency_rate: float = 0  # latency runs and soak at this rate, calls/s (0: half the service's capacity)


FULL = Plan(step_s=8, start_rate=20, factor=2, refine=2, max_rate=640, talk_s=2.0,
            latency_s=16, latency_rounds=4, conc_first_s=8, conc_max=2000, conc_budget_s=90, conc_hold_s=3,
            max_setup_s=0.5, soak_s=40)
QUICK = Plan(step_s=5, start_rate=20, factor=2, refine=1, max_rate=640, talk_s=2.0,
             latency_s=8, latency_rounds=2, conc_first_s=5, conc_max=500, conc_budget_s=40, conc_hold_s=2,
             max_setup_s=0.5, soak_s=20)

REST_PHASES = ("request_to_agent_invite", "agent_answer_to_callee_invite",
               "callee_answer_to_bridged", "total", "request_answered")
HEADER_PHASES = ("invite_to_callee_invite", "callee_answer_to_bridged", "total")

_callees = itertools.count(1)


def next_callee() -> str:
    """A callee number unique in the run (it ties SIP messages and bridges to one call)."""
    return f"02{next(_callees):08d}"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


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


# ---------------------------------------------------------------------------
# calls and the two subjects that place them
# ---------------------------------------------------------------------------
@dataclass
class CallRec:
    """One call the benchmark placed (times: seconds since the epoch)."""

    callee: str
    sched: float = 0.0        # when the open-loop schedule wanted it
    sent: float | None = None  # request written
    done: float | None = None  # answer read
    status: int | None = None
    call_id: str | None = None
    error: str | None = None


class Baseline:
    """Bare Asterisk: ``POST /ari/channels`` of the agent into the bench context."""

    name = "asterisk"
    ok_status = 200

    def __init__(self, ari: HttpPool):
        self.ari = ari
        self.placed = 0

    async def place(self, rec: CallRec) -> None:
        params = {"endpoint": f"PJSIP/{AGENT}", "context": BENCH_CONTEXT, "extension": rec.callee,
                  "priority": 1, "timeout": 30}
        # What the service sets on its agent leg: the callee on the phone, the CDR tag.
        body = {"variables": {"CONNECTEDLINE(num)": rec.callee, "CONNECTEDLINE(name)": rec.callee,
                              "CDR(call_ref)": "bench-" + rec.callee}}
        await _send(self.ari, rec, "POST", "/ari/channels", params=params, json_body=body)
        self.placed += 1


class Service:
    """The service's REST API: ``POST /click2dial/calls``."""

    name = "service"
    ok_status = 201

    def __init__(self, http: HttpPool, proc: ServiceProcess):
        self.http, self.proc = http, proc
        self.placed = 0

    async def place(self, rec: CallRec) -> None:
        body = {"agent": AGENT, "callee": rec.callee, "outbound_id": CLID,
                "call_ref": "bench-" + rec.callee}
        data = await _send(self.http, rec, "POST", "/click2dial/calls", json_body=body)
        self.placed += 1
        if rec.status == self.ok_status and data:
            try:
                rec.call_id = json.loads(data)["id"]
            except (ValueError, KeyError):
                rec.error = "no call id in the answer"


async def _send(pool: HttpPool, rec: CallRec, method: str, path: str, **kw) -> bytes | None:
    try:
        status, data, sent = await asyncio.wait_for(pool.request(method, path, **kw), timeout=30)
    except (HttpError, OSError, asyncio.TimeoutError) as exc:
        rec.error = f"{type(exc).__name__}: {exc}"[:200]
        return None
    rec.sent, rec.done, rec.status = sent, time.time(), status
    if status >= 300:
        rec.error = data[:200].decode(errors="replace")
    return data


# ---------------------------------------------------------------------------
# the bench: Asterisk, observer, peers, steps
# ---------------------------------------------------------------------------
class Bench:
    """Everything one run owns; ``phase_*`` methods are the measurements."""

    def __init__(self, plan: Plan, root: Path, workdir: Path, profile: bool = False):
        self.plan, self.root, self.workdir = plan, root, workdir
        self.profile = profile
        self.profiler: subprocess.Popen | None = None
        self.ast = AsteriskBench(root, extra_files={
            "extensions_local.conf": EXTENSIONS_LOCAL,
            "pjsip_site.conf": (OVERLAY_DIR / "pjsip_site.conf").read_text() + PJSIP_BASE_PHONE,
        })
        self.ari: HttpPool | None = None
        self.obs: Observer | None = None
        self.svc: ServiceProcess | None = None
        self.service: Service | None = None
        self.peers: list[SippPeer] = []
        self.samples: list[dict] = []      # service RSS / CPU over time
        self.idle_rss: list[dict] = []     # service RSS after each step, calls so far
        self._sampler: asyncio.Task | None = None
        self.header_calls = 0
        self.svc_cpu0 = 0.0
        self.t_start = time.time()

    # --- life cycle -----------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self.ast.start)
        self.ari = HttpPool("127.0.0.1", 8088, auth=(ARI_USER, ARI_PASSWORD), max_conns=32)
        self.obs = Observer("127.0.0.1", 8088, (ARI_USER, ARI_PASSWORD), self.ari)
        await self.obs.start()

    async def stop(self) -> None:
        await self.stop_service()
        for peer in self.peers:
            await asyncio.to_thread(peer.stop)
        if self.obs is not None:
            await self.obs.stop()
        if self.ari is not None:
            await self.ari.close()
        await asyncio.to_thread(self.ast.stop)
        shutil.rmtree(self.root / "tmp/c2d-bench", ignore_errors=True)

    async def start_service(self) -> None:
        self.svc = ServiceProcess(self.workdir / "service", SERVICE_OVERRIDES, store_url=STORE["url"])
        await asyncio.to_thread(self.svc.start)
        host, port = self.svc.url.split("//", 1)[1].rsplit(":", 1)
        self.service = Service(HttpPool(host, int(port), max_conns=32), self.svc)
        self.svc_cpu0 = cpu_seconds(self.svc.proc.pid)
        self._sampler = asyncio.create_task(self._sample())
        if self.profile:
            self.start_profiler()

    def start_profiler(self) -> None:
        """py-spy record of the service (collapsed stacks), until the service stops."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(spy).exists():
            log("--profile: py-spy not found (pip install py-spy); not profiling")
            return
        self.profile_path = RESULTS / "profile-service.txt"
        self.profiler = subprocess.Popen(
            [spy, "record", "--pid", str(self.svc.proc.pid), "--rate", "100", "--format", "raw",
             "--threads", "--nonblocking", "--output", str(self.profile_path)],
            stdout=subprocess.DEVNULL, stderr=open(self.workdir / "py-spy.log", "wb"))

    async def stop_service(self) -> dict | None:
        if self.svc is None or self.svc.proc is None:
            self.svc = None
            return None
        if self._sampler is not None:
            self._sampler.cancel()
            self._sampler = None
        pid = self.svc.proc.pid
        out = {"cpu_s": round(cpu_seconds(pid) - self.svc_cpu0, 3), **memory_kb(pid)}
        if self.profiler is not None:
            self.profiler.send_signal(signal.SIGINT)
            try:
                await asyncio.to_thread(self.profiler.wait, 30)
            except subprocess.TimeoutExpired:
                self.profiler.kill()
            self.profiler = None
        if self.service is not None:
            await self.service.http.close()
        await asyncio.to_thread(self.svc.stop)
        self.svc = None
        return out

    async def _sample(self) -> None:
        pid = self.svc.proc.pid
        while True:
            mem = memory_kb(pid)
            self.samples.append({"t": round(time.time() - self.t_start, 1),
                                 "rss_kb": mem.get("VmRSS"), "cpu_s": round(cpu_seconds(pid), 2),
                                 "calls": self.service_calls()})
            await asyncio.sleep(1.0)

    def service_calls(self) -> int:
        return (self.service.placed if self.service else 0) + self.header_calls

    def note_idle_rss(self, label: str) -> None:
        if self.svc is not None:
            self.idle_rss.append({"after": label, "calls": self.service_calls(),
                                  "rss_kb": memory_kb(self.svc.proc.pid).get("VmRSS")})

    # --- peers ----------------------------------------------------------
    async def peer(self, name: str, port: int, scenario: str, **kw) -> SippPeer:
        p = await asyncio.to_thread(SippPeer, self.root, name, port, scenario, **kw)
        self.peers.append(p)
        return p

    async def stop_peers(self) -> None:
        for p in self.peers:
            await asyncio.to_thread(p.stop)
        self.peers = []

    def drop_peer_files(self, peers: list[SippPeer]) -> None:
        for p in peers:
            shutil.rmtree(p.dir, ignore_errors=True)

    # --- placing calls --------------------------------------------------
    async def run_calls(self, subject, rate: float, n: int) -> list[CallRec]:
        """Place ``n`` calls at ``rate`` calls/s on an open-loop schedule."""
        recs = [CallRec(next_callee()) for _ in range(n)]
        t0 = time.time() + 0.05
        tasks = []
        for i, rec in enumerate(recs):
            rec.sched = t0 + i / rate
            delay = rec.sched - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(subject.place(rec)))
        await asyncio.gather(*tasks)
        return recs

    async def ari_count(self, what: str) -> int:
        status, data, _ = await self.ari.request("GET", f"/ari/{what}")
        return len(json.loads(data)) if status == 200 else -1

    async def drain(self, end_at: float, grace_s: float = 15.0) -> tuple[int, int]:
        """Wait until Asterisk has no channel and no bridge (from ``end_at``, at most
        ``grace_s`` more); return what is left then (channels, bridges), and clear it."""
        await asyncio.sleep(max(0.0, end_at - time.time()))
        deadline = time.time() + grace_s
        while True:
            if self.obs.connected_now <= 0:
                chans, bridges = await self.ari_count("channels"), await self.ari_count("bridges")
                if (chans == 0 and bridges == 0) or time.time() > deadline:
                    break
            elif time.time() > deadline:
                chans, bridges = await self.ari_count("channels"), await self.ari_count("bridges")
                break
            await asyncio.sleep(0.25)
        if chans or bridges:
            log(f"  left in Asterisk: {chans} channels, {bridges} bridges — clearing")
            await asyncio.to_thread(self.ast.hangup_everything)
            await asyncio.sleep(2)
            await asyncio.to_thread(self.ast.wait_idle, 15)
        return chans, bridges

    def journal_reasons(self, recs: list[CallRec], wait_s: float = 5.0) -> dict[str, str | None]:
        """The service journal's reason for each call id (waits for them to end)."""
        ids = [r.call_id for r in recs if r.call_id]
        deadline = time.time() + wait_s
        engine = sa.create_engine(self.svc.store_url)     # SQLite file or PostgreSQL (--store)
        try:
            while True:
                got: dict[str, str | None] = {}
                with engine.connect() as con:
                    for i in range(0, len(ids), 500):
                        rows = con.execute(sa.select(calls.c.id, calls.c.state, calls.c.reason)
                                           .where(calls.c.id.in_(ids[i:i + 500])))
                        for cid, state, reason in rows:
                            got[cid] = reason if state == "ended" else None
                if all(got.get(i) for i in ids) or time.time() > deadline:
                    return got
                time.sleep(0.3)
        finally:
            engine.dispose()

    # --- one step: place, drain, judge ---------------------------------
    async def step(self, subject, rate: float, n: int, talk_s: float, label: str,
                   conc_target: int | None = None) -> dict:
        agent = await self.peer("agent", AGENT_PORT, uas_scenario())
        trunk = await self.peer("trunk", TRUNK_PORT, uas_scenario(talk_ms=int(talk_s * 1000)))
        self.obs.reset_peak()
        ast_cpu0 = cpu_seconds(self.ast.proc.pid)
        recs = await self.run_calls(subject, rate, n)
        chans, bridges = await self.drain(recs[-1].sched + talk_s + 0.5)
        ast_cpu = cpu_seconds(self.ast.proc.pid) - ast_cpu0
        peak = self.obs.peak
        await self.stop_peers()
        self.drop_peer_files([agent, trunk])
        res = await self.judge(subject, recs, rate, chans, bridges)
        res.update(label=label, talk_s=talk_s, peak_connected=peak,
                   asterisk_cpu_s=round(ast_cpu, 2))
        if conc_target is not None and peak < conc_target:
            res["passed"] = False
            res["why"] = (res["why"] + "; " if res["why"] else "") + f"peak {peak} < {conc_target}"
        self.note_idle_rss(label)
        self.obs.forget()
        return res

    async def judge(self, subject, recs: list[CallRec], rate: float, chans: int, bridges: int) -> dict:
        """Pass or fail one step: every call answered, bridged, completed; nothing left; on time."""
        reasons = await asyncio.to_thread(self.journal_reasons, recs) if subject.name == "service" else {}
        failed, setups, errors = 0, [], Counter()
        for rec in recs:
            seen = self.obs.bridge_for(rec.callee, rec.call_id)
            bridged = seen is not None and seen.connected_at is not None
            reason = reasons.get(rec.call_id) if subject.name == "service" else None
            why = None
            if rec.status != subject.ok_status:
                why = (rec.error or f"status {rec.status}")[:60]
            elif not bridged:
                why = "never bridged" + (f" (journal: {reason})" if subject.name == "service" else "")
            elif subject.name == "service" and reason != "completed":
                why = f"journal: {reason}"
            if why:
                failed += 1
                errors[why] += 1
            if bridged:
                setups.append(seen.connected_at - rec.sched)
        sent = [r.sent for r in recs if r.sent]
        achieved = (len(sent) - 1) / (max(sent) - min(sent)) if len(sent) > 1 and max(sent) > min(sent) else rate
        p99 = pct(setups, 99)
        why = []
        if failed:
            why.append(f"{failed} failed ({', '.join(f'{k}: {v}' for k, v in errors.most_common(3))})")
        if chans or bridges:
            why.append(f"{chans} channels / {bridges} bridges left")
        if p99 is not None and p99 > self.plan.max_setup_s:
            why.append(f"set-up p99 {p99 * 1000:.0f} ms > {self.plan.max_setup_s * 1000:.0f} ms")
        if achieved < 0.9 * rate:
            why.append(f"requests went out at only {achieved:.1f}/s (answers too slow, or the machine saturated)")
        return {"rate": round(rate, 2), "calls": len(recs), "failed": failed,
                "leftover_channels": chans, "leftover_bridges": bridges,
                "achieved_rate": round(achieved, 1), "setup_ms": summary_ms(setups),
                "passed": not why, "why": "; ".join(why)}

    # --- phases ---------------------------------------------------------
    async def phase_rate(self, subject, max_rate: float | None = None) -> dict:
        """Ramp the rate until a step fails, then bisect; the last passing rate is the capacity.

        ``max_rate`` (calls/s): never try more (the ARI floor is capped at
        bare Asterisk's capacity: above it, Asterisk only drowns in ARI
        requests, and a step can then take minutes to drain)."""
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

        lo, hi, rate = 0.0, None, min(plan.start_rate, cap)
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


def _user(value: str) -> str:
    m = re.search(r"sips?:([^@;>]+)@", value)
    return m.group(1) if m else ""


def uas_index(messages, callee_in: str) -> dict[str, dict]:
    """callee → {"invite": INVITE received at, "ok": its 200 OK sent at}, for a UAS log.

    ``callee_in``: "uri" (trunk: the Request-URI user) or "From" (agent phone:
    Asterisk puts the connected line, the callee, in From).
    """
    by_cid: dict[str, dict] = {}
    for m in messages:
        cid = (m.header("Call-ID") or [""])[0]
        if m.direction == "received" and m.method == "INVITE" and cid not in by_cid:
            callee = _user(m.first_line) if callee_in == "uri" else _user((m.header("From") or [""])[0])
            by_cid[cid] = {"callee": callee, "invite": m.time}
        elif (m.direction == "sent" and m.status == 200 and cid in by_cid
              and "INVITE" in (m.header("CSeq") or [""])[0] and "ok" not in by_cid[cid]):
            by_cid[cid]["ok"] = m.time
    return {v["callee"]: v for v in by_cid.values()}


def uac_index(messages) -> dict[str, dict]:
    """callee → {"invite": first INVITE sent at}, for a UAC (phone) log."""
    out: dict[str, dict] = {}
    for m in messages:
        if m.direction == "sent" and m.method == "INVITE":
            callee = _user(m.first_line)
            out.setdefault(callee, {"invite": m.time})
    return out


# ---------------------------------------------------------------------------
# the machine, the report
# ---------------------------------------------------------------------------
def machine(asterisk_version: str) -> dict:
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


def ratio(a, b) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def fmt(v, unit="") -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        v = f"{v:.1f}" if abs(v) < 1000 else f"{v:.0f}"
    return f"{v}{unit}"


def fmt_ratio(v) -> str:
    return "—" if v is None else f"{v:.2f}"


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
    out["targets"] = {
        "capacity_at_least_90pct_of_asterisk": (out["capacity_ratio"] or 0) >= 0.9,
        "simultaneous_at_least_90pct_of_asterisk": (out["simultaneous_ratio"] or 0) >= 0.9,
        "added_setup_p99_under_20ms": worst_p99 is not None and worst_p99 < 20,
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
                 f"{cap(cb, 'capacity_cps')} | {fmt_ratio(d['capacity_ratio'])} | ≥ 0.9 "
                 f"{'✔' if d['targets']['capacity_at_least_90pct_of_asterisk'] else '✘'} |")
    if res.get("ari_floor"):
        cf = res["ari_floor"]["rate"]
        lines.append(f"| sustained calls/s of the ARI floor (a minimal Stasis app, bench/floor.py) | "
                     f"{cap(cf, 'capacity_cps')} | {cap(cb, 'capacity_cps')} | {fmt_ratio(d.get('floor_ratio'))} "
                     f"| — |")
        lines.append(f"| the service against the ARI floor | {cap(cs, 'capacity_cps')} | "
                     f"{cap(cf, 'capacity_cps')} (floor) | {fmt_ratio(d.get('service_to_floor_ratio'))} | — |")
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
    lines.append(f"Worst added set-up p99: {fmt(d['worst_added_p99_ms'])} ms (target < 20 ms "
                 f"{'✔' if d['targets']['added_setup_p99_under_20ms'] else '✘'}). "
                 f"Samples: REST {svc['latency']['rest']['phases_ms']['total']['n']}, "
                 f"header {svc['latency']['header']['phases_ms']['total']['n']} calls.")
    r = svc["resources"]
    a = r["asterisk_cpu_s_per_1000"]
    flat = {True: "flat ✔", False: "growing ✘"}.get(r.get("memory_flat"), "—")
    lines += ["", "| resources | value |", "|---|---:|",
              f"| calls handled by the service in the run | {r['calls']} |",
              f"| service CPU (user + system) per 1,000 calls, steady at {fmt(rate)} calls/s: REST / header path | "
              f"{fmt(r['cpu_s_per_1000_rest_steady'])} s / {fmt(r['cpu_s_per_1000_header_steady'])} s |",
              f"| service CPU per 1,000 calls over the whole run (ramps to overload included) | "
              f"{fmt(r['cpu_s_per_1000_calls'])} s |",
              f"| Asterisk CPU per 1,000 calls, REST path: with the service / bare (originate + dialplan) | "
              f"{fmt(a['service_rest'])} s / {fmt(a['asterisk_rest'])} s |",
              f"| Asterisk CPU per 1,000 calls, header path: with the service / bare (dialplan) | "
              f"{fmt(a['service_header'])} s / {fmt(a['asterisk_header'])} s |",
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


PROFILE_PARTS = (   # first match wins, checked on the whole stack of a sample
    ("httpcore current_async_library(): a failed 'import sniffio' on every request",
     ("current_async_library",)),
    ("ARI REST client: the HTTP library (httpx or aiohttp) and its helpers",
     ("httpx/", "httpcore/", "h11/", "anyio/", "aiohttp/", "yarl/", "multidict/")),
    ("journal: SQLite commit (fsync)", ("do_commit",)),
    ("journal: SQLAlchemy statements and connections", ("sqlalchemy/", "journal.py")),
    ("logging", ("logging/", "logs.py")),
    ("ARI event socket: websockets + JSON", ("websockets/", "json/")),
    ("HTTP API: waitress + Flask", ("waitress/", "flask/", "werkzeug/")),
    ("event loop: epoll (polling, or waiting counted as active)", ("EpollSelector.select",)),
)


def profile_parts(path: Path) -> Counter:
    """Samples of a py-spy collapsed-stack file counted by part of the service."""
    parts: Counter = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        for name, needles in PROFILE_PARTS:
            if any(n in stack for n in needles):
                parts[name] += int(count)
                break
        else:
            parts["the rest: engine, Stasis app, asyncio, threads"] += int(count)
    return parts


def profile_summary(path: Path, top: int = 25) -> str:
    """Where the service's CPU went: per thread, and the functions with the most samples
    (inclusive: on the stack; self: at the top), from py-spy's collapsed stacks."""
    threads, incl, own, total = Counter(), Counter(), Counter(), 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        threads[frames[0]] += n
        seen = set()
        for f in frames[1:]:
            name = re.sub(r"\s*\((?:.*/)?(?:site-packages/|python3\.\d+/|platforma_c2d/)?([^:()]+):\d+\)", r" (\1)", f)
            if name not in seen:
                incl[name] += n
                seen.add(name)
        if len(frames) > 1:
            own[re.sub(r":\d+\)", ")", frames[-1])] += n
    if not total:
        return "profile: no samples"
    out = [f"profile: {total} samples at 100 Hz (on-CPU), {path}", "", "by part of the service:"]
    out += [f"  {n / total:6.1%}  {part}" for part, n in profile_parts(path).most_common()]
    out += ["", "by thread:"]
    out += [f"  {n / total:6.1%}  {t}" for t, n in threads.most_common(6)]
    out += ["", "inclusive (on the stack):"]
    out += [f"  {n / total:6.1%}  {f}" for f, n in incl.most_common(top)]
    out += ["", "self (at the top of the stack):"]
    out += [f"  {n / total:6.1%}  {f}" for f, n in own.most_common(15)]
    return "\n".join(out)


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


# ---------------------------------------------------------------------------
async def run(plan: Plan, mode: str, profile: bool = False) -> dict:
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
            log("ARI floor (a minimal Stasis app, no service): rate ramp")
            floor = AriFloor(bench.ari, "127.0.0.1", 8088, (ARI_USER, ARI_PASSWORD), AGENT, CLID)
            await floor.start()
            try:
                res["ari_floor"] = {"rate": await bench.phase_rate(
                    floor, max_rate=res["asterisk"]["rate"]["capacity_cps"] or None)}
            finally:
                await floor.stop()

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
    if "error" not in res:
        res["derived"] = derive(res)
    return res


def main(argv: list[str] | None = None) -> int:
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
                        "PostgreSQL server started for the run (tests/bench/postgres.py)")
    p.add_argument("--from-json", metavar="FILE",
                   help="do not run: print the table of an earlier run's JSON (with --update-docs: "
                        "put it into docs/performance.md)")
    args = p.parse_args(argv)
    if args.from_json:
        md = render(json.loads(Path(args.from_json).read_text()))
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
    postgres = None
    if args.store == "postgresql":
        from tests.bench.postgres import PostgresServer

        postgres = PostgresServer().start()
        STORE["url"] = postgres.new_database("bench")
        mode += " store=postgresql"
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
    md = render(res)
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
