"""Trial: the service's ARI requests over HTTP against over the event WebSocket
(``[ari] requests``, docs/decisions/0021), on one Asterisk, alternated.

    C2D_BENCH_ROOT=/var/cache/platforma-c2d/bench-root \\
      unshare -n sh -c 'ip link set lo up && .venv/bin/python -m bench.ari_requests --rate 3'

Each block restarts the service in one mode and runs the latency phase
(``Bench.phase_latency``: the service's REST and header paths interleaved
with bare Asterisk doing the same calls), in the order http, websocket,
websocket, http (``--blocks``); so each mode's Asterisk CPU per call is a
ratio to bare Asterisk measured over the same minutes. Prints one line per
block and writes every figure to ``bench-results/ari-requests.json``.

``--requests N`` first measures one request alone: N ``GET /asterisk/variable``
of the service's ARI client per mode, alternated, one at a time and then
16 in flight, with Asterisk's CPU per request and the wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import time
from dataclasses import replace

from bench.phases import Bench
from bench.procstat import cpu_seconds
from platforma_c2d.ari.client import AriClient
from platforma_c2d.ari.events import EventStream
from testbed.asterisk import ARI_PASSWORD, ARI_URL, ARI_USER
from bench.plan import FULL, RESULTS, SERVICE_OVERRIDES, log
from testbed.root import ensure_root
from bench.subjects import Baseline

#: What the service logs once its requests go over the socket (platforma_c2d/ari/wsrequests.py).
ON_SOCKET = "ARI requests go over the event socket"


async def block(bench: Bench, baseline: Baseline, mode: str, rate: float, rounds: int) -> dict:
    """The latency phase with the service in ``mode``; the block's figures."""
    SERVICE_OVERRIDES["ari"] = {**SERVICE_OVERRIDES.get("ari", {}), "requests": mode}
    await bench.start_service()
    try:
        if mode == "websocket":
            deadline = time.monotonic() + 15
            while ON_SOCKET not in bench.svc.log_path.read_text(errors="replace"):
                if time.monotonic() > deadline:
                    raise RuntimeError("the service never sent its requests on the socket")
                await asyncio.sleep(0.1)
        lat = await bench.phase_latency(baseline, rate, rounds)
    finally:
        await bench.stop_service()
    out = {"mode": mode}
    for path in ("rest", "header"):
        s, b = lat["service"][path], lat["asterisk"][path]
        out[path] = {
            "calls": s["calls"], "failed": s["failed"], "bare_failed": b["failed"],
            "asterisk_cpu_ms": s["asterisk_cpu_ms_per_call"], "bare_cpu_ms": b["asterisk_cpu_ms_per_call"],
            "ratio": round(s["asterisk_cpu_ms_per_call"] / b["asterisk_cpu_ms_per_call"], 2),
            "service_cpu_ms": s["service_cpu_ms_per_call"],
            "setup_ms": s["phases_ms"].get("total"), "bare_setup_ms": b["phases_ms"].get("total"),
            "phases_ms": s["phases_ms"]}
        log(f"  {mode:9} {path:6}: Asterisk {out[path]['asterisk_cpu_ms']} ms/call, "
            f"{out[path]['ratio']} x bare ({out[path]['bare_cpu_ms']} ms); service "
            f"{out[path]['service_cpu_ms']} ms/call; set-up {out[path]['setup_ms']}; "
            f"failed {out[path]['failed']}")
    return out


async def per_request(pid: int, n: int, rounds: int = 2) -> list[dict]:
    """``n`` requests per mode and way (one at a time, 16 in flight), the modes alternated."""
    async def nothing(*_):
        return None

    clients = {mode: AriClient(ARI_URL, ARI_USER, ARI_PASSWORD, "c2d-bench-requests", requests=mode)
               for mode in ("http", "websocket")}
    ws = clients["websocket"]
    stream = EventStream(ARI_URL, ARI_USER, ARI_PASSWORD, "c2d-bench-requests", nothing, nothing, nothing,
                         sockets=ws.socket)
    task = asyncio.create_task(stream.run())
    out = []
    try:
        while not ws.socket.ready:
            await asyncio.sleep(0.05)
        for r in range(rounds):
            for mode in (("http", "websocket") if r % 2 == 0 else ("websocket", "http")):
                client = clients[mode]
                for in_flight in (1, 16):
                    sem = asyncio.Semaphore(in_flight)

                    async def one(client=client, sem=sem):
                        async with sem:
                            await client.global_variable("C2D_NATIVE_CALL")

                    cpu0, t0 = cpu_seconds(pid), time.monotonic()
                    await asyncio.gather(*(one() for _ in range(n)))
                    wall, cpu = time.monotonic() - t0, cpu_seconds(pid) - cpu0
                    row = {"mode": mode, "in_flight": in_flight, "requests": n,
                           "asterisk_cpu_ms": round(cpu / n * 1000, 3), "wall_ms": round(wall / n * 1000, 3)}
                    log(f"  {mode:9} {in_flight:2} in flight: Asterisk {row['asterisk_cpu_ms']} ms CPU, "
                        f"{row['wall_ms']} ms wall per request")
                    out.append(row)
    finally:
        await stream.stop()
        await task
        for client in clients.values():
            await client.close()
    return out


async def main(rate: float, order: list[str], rounds: int, latency_s: float, requests: int = 0) -> dict:
    root = await asyncio.to_thread(ensure_root, log)
    workdir = RESULTS / "work-ari-requests"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    bench = Bench(replace(FULL, latency_s=latency_s), root, workdir)
    res = {"rate": rate, "order": order, "blocks": []}
    try:
        await bench.start()
        baseline = Baseline(bench.ari)
        if requests:
            log(f"{requests} requests per mode and way")
            res["per_request"] = await per_request(bench.ast.proc.pid, requests)
        for mode in order:
            log(f"block: requests = {mode}")
            res["blocks"].append(await block(bench, baseline, mode, rate, rounds))
    finally:
        await bench.stop()
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=3.0, help="calls/s of every latency run")
    ap.add_argument("--blocks", default="http,websocket,websocket,http", help="the modes, in order")
    ap.add_argument("--rounds", type=int, default=2, help="chunks of each block's latency phase")
    ap.add_argument("--requests", type=int, default=0, help="requests of the per-request trial (0: none)")
    ap.add_argument("--latency-s", type=float, default=16.0, help="seconds of calls per path and side")
    a = ap.parse_args()
    result = asyncio.run(main(a.rate, a.blocks.split(","), a.rounds, a.latency_s, a.requests))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ari-requests.json").write_text(json.dumps(result, indent=1))
