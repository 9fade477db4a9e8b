"""The benchmark's subject ``service-dialplan`` (bench/dialplan.py): the service with
``[dial] bridging = "dialplan"``, its config and its lines in the report."""

from __future__ import annotations

import asyncio

from bench.dialplan import NAME, OVERRIDES, dialplan_phases, render_dialplan
from bench.plan import QUICK

RES = {"asterisk": {"rate": {"capacity_cps": 40.0}},
       "service": {"rate": {"capacity_cps": 10.0}},
       "service_dialplan": {
           "rate": {"capacity_cps": 30.0, "ceiling_reached": False},
           "asterisk_cpu": {"asterisk": {"rate": 6, "mean_ms": 20.0, "asterisk_cpu_ms_per_call": [19.0, 21.0]},
                            NAME: {"rate": 6, "mean_ms": 35.0, "asterisk_cpu_ms_per_call": [34.0, 36.0],
                                   "failed": 1, "calls": 24, "why": "1 failed (journal: failed: 1)"}},
           "resources": {"calls": 300, "cpu_s": 6.0, "cpu_ms_per_call": 20.0}}}


def test_the_subject_is_the_service_bridging_in_the_dialplan_on_an_app_of_its_own():
    assert OVERRIDES["dial"] == {"bridging": "dialplan"}
    assert OVERRIDES["ari"]["app"] != "click2dial"
    assert QUICK.dialplan is True          # a run measures it unless told not to


def test_report_lines_give_capacity_and_asterisk_cpu_as_ratios_to_bare_asterisk():
    md = render_dialplan(RES)
    assert "| sustained calls/s (0 failed, 0 left over) | 30.0 | 40.0 | 0.75 |" in md, md
    assert "34.0 / 36.0 ms (mean 35.0) | 20.0 ms | 1.75 |" in md, md
    assert "1 of 24 calls failed in the CPU steps" in md


def test_no_lines_for_a_run_without_the_subject():
    assert render_dialplan({"asterisk": RES["asterisk"], "service": RES["service"]}) == ""


class _Bench:
    """What dialplan_phases uses of bench.phases.Bench, recorded."""

    def __init__(self):
        self.plan, self.calls, self.service = QUICK, [], None

    async def start_service(self, name, overrides):
        self.calls.append(("start", name, overrides))
        self.service = type("Svc", (), {"name": name, "placed": 12})()

    async def phase_rate(self, subject, max_rate=None, start_rate=None):
        self.calls.append(("rate", subject.name, max_rate, start_rate))
        return {"capacity_cps": 8.0}

    async def phase_cpu(self, subjects, rate, seconds):
        self.calls.append(("cpu", [s.name for s in subjects]))
        return {}

    async def stop_service(self):
        self.calls.append(("stop",))
        return {"cpu_s": 0.6, "VmHWM": 2048}


def test_phases_ramp_from_the_stasis_services_capacity_up_to_bare_asterisks_then_stop_it():
    bench, res = _Bench(), {k: v for k, v in RES.items() if k != "service_dialplan"}
    baseline = type("Base", (), {"name": "asterisk"})()
    asyncio.run(dialplan_phases(bench, baseline, res))
    assert bench.calls == [("start", NAME, OVERRIDES), ("rate", NAME, 40.0, 10.0),
                           ("cpu", ["asterisk", NAME]), ("stop",)]
    assert res["service_dialplan"]["resources"] == {"calls": 12, "cpu_s": 0.6, "cpu_ms_per_call": 50.0,
                                                    "vmhwm_mb": 2.0}
