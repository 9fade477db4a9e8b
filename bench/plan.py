"""What a benchmark run sets up and how hard it drives it: the plan of the
phases (``FULL``, ``QUICK``), the SIP peers' numbers and ports, the bench-only
dialplan and phone of the bare-Asterisk baseline, the service's config
overrides, and the run's log line.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench-results"

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

; Asterisk bridging natively, observed through ARI (bench/native.py): the agent
; leg, originated here, presents the CLID (C2D_CLID) and dials the callee;
; after Dial() the trunk's SIP code goes to the observing app, as
; [c2d-trunk-leg] does for the service.
[c2d-bench-native]
exten => _X.,1,Set(CALLERID(num)=${{C2D_CLID}})
 same => n,Set(CALLERID(name)=)
 same => n,Dial(PJSIP/${{EXTEN}}@trunk,45)
 same => n,UserEvent(c2d-leg,sip_code: ${{HANGUPCAUSE(${{HANGUPCAUSE_KEYS()}},tech)}})
 same => n,Hangup(${{HANGUPCAUSE}})
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
    floor_variants: tuple = ()  # then these: "local" (bench/floor.py), "native" (bench/native.py)
    cpu_rate: float = 6      # with floor_variants: Asterisk CPU per call of each design at this rate
    service: bool = True     # false: stop after the floor and its variants (bench/floors.py)
    dialplan: bool = True    # then the service with [dial] bridging = "dialplan" (bench/dialplan.py)
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
    """Print ``msg`` with the wall-clock time (HH:MM:SS), flushed at once."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

