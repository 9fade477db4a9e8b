"""The calls the benchmark places and the subjects that place them: bare
Asterisk (ARI originate into the bench context) and the service (its REST
API); each records, per call, when the request went out and its answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from bench.httpclient import HttpError, HttpPool
from bench.plan import AGENT, BENCH_CONTEXT, CLID
from testbed.service import ServiceProcess


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
        """Originate the agent leg of one call to ``rec.callee`` into the bench context."""
        params = {"endpoint": f"PJSIP/{AGENT}", "context": BENCH_CONTEXT, "extension": rec.callee,
                  "priority": 1, "timeout": 30}
        # What the service sets on its agent leg: the callee on the phone, the CDR tag.
        body = {"variables": {"CONNECTEDLINE(num)": rec.callee, "CONNECTEDLINE(name)": rec.callee,
                              "CDR(call_ref)": "bench-" + rec.callee}}
        await _send(self.ari, rec, "POST", "/ari/channels", params=params, json_body=body)
        self.placed += 1


class Service:
    """The service's REST API: ``POST /click2dial/calls``. ``name``: the subject's
    name in the run (``service``; ``service-dialplan`` for the service with
    ``[dial] bridging = "dialplan"``, bench/dialplan.py)."""

    ok_status = 201

    def __init__(self, http: HttpPool, proc: ServiceProcess, name: str = "service"):
        self.http, self.proc, self.name = http, proc, name
        self.placed = 0

    async def place(self, rec: CallRec) -> None:
        """Place one call to ``rec.callee`` through the service's REST API; ``rec.call_id`` from the answer."""
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

