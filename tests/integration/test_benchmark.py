"""The benchmark command of issue 8 (``python -m bench.run``, what
``scripts/bench.sh`` runs) against the real Asterisk bench: a tiny plan,
in a root and a network namespace of its own (it frees its root first, which
would kill the session's Asterisk), checked for its table, its figures and
what it leaves behind. The full run's timing is for docs/performance.md,
never asserted here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from testbed.asterisk import _mounts_under, processes_in

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = {"step_s": 2, "start_rate": 4, "max_rate": 8, "refine": 0, "latency_s": 4, "latency_rounds": 1,
        "conc_first_s": 1, "conc_max": 8, "conc_budget_s": 10, "soak_s": 4, "floor": False}


def test_the_benchmark_command_measures_both_sides_and_leaves_nothing(bench_root, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(f"tar -C {bench_root} --exclude=./proc/* --exclude=./dev/* --exclude=./tmp/* -cf - . "
                   f"| tar -xf - -C {root}", shell=True, check=True)
    out = tmp_path / "latest.json"
    sets = " ".join(f"--set {k}={json.dumps(v)}" for k, v in TINY.items())
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORMA_C2D_")}
    env.update(C2D_BENCH_ROOT=str(root), C2D_BENCH_TMP=str(tmp_path / "tmp"))
    try:
        run = subprocess.run(
            ["unshare", "-n", "sh", "-c",
             f"ip link set lo up && {sys.executable} -m bench.run --quick {sets} --out {out}"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        res = json.loads(out.read_text())
        # Both sides measured: capacity, set-up latency of both paths, resources.
        assert res["asterisk"]["rate"]["capacity_cps"] > 0 and res["service"]["rate"]["capacity_cps"] > 0
        for path, phase in (("rest", "request_to_agent_invite"), ("header", "invite_to_callee_invite")):
            assert res["service"]["latency"][path]["phases_ms"][phase]["n"] > 0
            assert res["service"]["latency"][path]["failed"] == 0
        assert res["derived"]["capacity_ratio"] > 0
        # The service bridging in the dialplan, a subject of its own (bench/dialplan.py).
        dialplan = res["service_dialplan"]
        assert dialplan["rate"]["capacity_cps"] > 0, dialplan["rate"]
        assert dialplan["asterisk_cpu"]["service-dialplan"]["mean_ms"] > 0, dialplan["asterisk_cpu"]
        assert '| the service, `[dial] bridging = "dialplan"` |' in run.stdout
        resources = res["service"]["resources"]
        assert resources["cpu_s_per_1000_calls"] > 0 and resources["vmhwm_mb"] > 0
        assert resources["memory_flat"] in (True, False)       # judged on the soak
        assert "| capacity | service | bare Asterisk | ratio | target |" in run.stdout
        assert out.with_suffix(".md").read_text().count("\n") > 10
    finally:
        leftover = processes_in(root), _mounts_under(root)
        if not leftover[1]:      # never delete through a bind mount of /proc or /dev
            shutil.rmtree(root, ignore_errors=True)
    assert leftover == ([], []), f"the benchmark left behind: {leftover}"
