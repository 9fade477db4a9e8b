"""The rig of one benchmark run: Asterisk, the observer, the service, the
SIPp peers, and one step (place calls at a rate, wait until Asterisk is
empty, judge every call). The phases built on it are in ``bench/phases.py``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from bench.httpclient import HttpPool
from bench.observer import Observer
from bench.plan import (AGENT_PORT, EXTENSIONS_LOCAL, PJSIP_BASE_PHONE, RESULTS, SERVICE_OVERRIDES, STORE,
                        TRUNK_PORT, Plan, log, next_callee)
from bench.procstat import cpu_seconds, memory_kb
from bench.stats import pct, summary_ms
from bench.subjects import CallRec, Service
from platforma_c2d.store.journal import calls
from testbed.asterisk import ARI_PASSWORD, ARI_USER, OVERLAY_DIR, AsteriskBench
from testbed.service import ServiceProcess
from testbed.sipp import SippPeer, uas_scenario


class Rig:
    """Everything one run owns; the ``phase_*`` methods of its subclass ``bench.phases.Bench`` are the measurements."""

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
        """Start Asterisk in the root, the pool of ARI connections and the observer ARI app."""
        await asyncio.to_thread(self.ast.start)
        self.ari = HttpPool("127.0.0.1", 8088, auth=(ARI_USER, ARI_PASSWORD), max_conns=32)
        self.obs = Observer("127.0.0.1", 8088, (ARI_USER, ARI_PASSWORD), self.ari)
        await self.obs.start()

    async def stop(self) -> None:
        """Stop the service, the SIPp peers, the observer and Asterisk; remove the run's files in the root."""
        await self.stop_service()
        for peer in self.peers:
            await asyncio.to_thread(peer.stop)
        if self.obs is not None:
            await self.obs.stop()
        if self.ari is not None:
            await self.ari.close()
        await asyncio.to_thread(self.ast.stop)
        shutil.rmtree(self.root / "tmp/c2d-bench", ignore_errors=True)

    async def start_service(self, name: str = "service", overrides: dict | None = None) -> None:
        """Start the service (``SERVICE_OVERRIDES``, then ``overrides`` section by section;
        the journal of ``--store``) as the subject ``name``, in a work directory of
        that name, with its HTTP client and its RSS/CPU sampler; with ``--profile``,
        py-spy on it."""
        config = {k: dict(v) for k, v in SERVICE_OVERRIDES.items()}
        for section, values in (overrides or {}).items():
            config.setdefault(section, {}).update(values)
        self.svc = ServiceProcess(self.workdir / name, config, store_url=STORE["url"])
        await asyncio.to_thread(self.svc.start)
        host, port = self.svc.url.split("//", 1)[1].rsplit(":", 1)
        self.service = Service(HttpPool(host, int(port), max_conns=32), self.svc, name)
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
        """Stop the service; return its CPU seconds since the start and its ``VmRSS``/``VmHWM``
        (kB) just before, or None when it was not running."""
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
        """Calls the service handled so far: REST calls placed plus header-path calls."""
        return (self.service.placed if self.service else 0) + self.header_calls

    def note_idle_rss(self, label: str) -> None:
        """Note the service's RSS (kB) at rest after the step ``label``, with the calls so far."""
        if self.svc is not None:
            self.idle_rss.append({"after": label, "calls": self.service_calls(),
                                  "rss_kb": memory_kb(self.svc.proc.pid).get("VmRSS")})

    # --- peers ----------------------------------------------------------
    async def peer(self, name: str, port: int, scenario: str, **kw) -> SippPeer:
        """Start a SIPp peer ``name`` on ``port`` running ``scenario`` in the root (``SippPeer`` arguments)."""
        p = await asyncio.to_thread(SippPeer, self.root, name, port, scenario, **kw)
        self.peers.append(p)
        return p

    async def stop_peers(self) -> None:
        """Stop every running SIPp peer of the run and forget them."""
        for p in self.peers:
            await asyncio.to_thread(p.stop)
        self.peers = []

    def drop_peer_files(self, peers: list[SippPeer]) -> None:
        """Remove the message logs and scenarios of ``peers`` (after they were read)."""
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
        """How many ``what`` (``channels``, ``bridges``) Asterisk has now; -1 when ARI refuses."""
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
            try:
                await asyncio.to_thread(self.ast.hangup_everything)
            except Exception as exc:  # noqa: BLE001 - a swamped Asterisk: the step failed already
                log(f"  clearing: {type(exc).__name__}: {exc}; waiting for Asterisk instead")
            await asyncio.sleep(2)
            await asyncio.to_thread(self.ast.wait_idle, 30)
        return chans, bridges

    def journal_reasons(self, recs: list[CallRec], store_url: str,
                        wait_s: float = 5.0) -> dict[str, str | None]:
        """The reason for each call id in the journal at ``store_url`` (waits for them to end)."""
        ids = [r.call_id for r in recs if r.call_id]
        deadline = time.time() + wait_s
        engine = sa.create_engine(store_url)     # SQLite file or PostgreSQL (--store)
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
        """One step: ``n`` calls of ``subject`` at ``rate`` calls/s talking ``talk_s`` seconds,
        drained and judged (:meth:`judge`); fails too when fewer than ``conc_target`` calls
        were connected at once. Returns the step's figures and verdict."""
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
        journalled = isinstance(subject, Service)      # the service, whatever its bridging
        reasons = (await asyncio.to_thread(self.journal_reasons, recs, subject.proc.store_url)
                   if journalled else {})
        failed, setups, errors = 0, [], Counter()
        for rec in recs:
            seen = self.obs.bridge_for(rec.callee, rec.call_id)
            bridged = seen is not None and seen.connected_at is not None
            reason = reasons.get(rec.call_id) if journalled else None
            why = None
            if rec.status != subject.ok_status:
                why = (rec.error or f"status {rec.status}")[:60]
            elif not bridged:
                why = "never bridged" + (f" (journal: {reason})" if journalled else "")
            elif journalled and reason != "completed":
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
