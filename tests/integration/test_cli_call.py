"""``platforma-c2d call`` against the real service (SPEC §8): it follows the
call to its end within a token's rate limit, and Ctrl-C hangs the call up."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

from testbed.sipp import uas_scenario

AGENT_PORT, TRUNK_PORT = 5071, 5070
TOKEN = "cli-token-for-the-call-command"
CONFIG = {"auth": {"tokens_sha256": [hashlib.sha256(TOKEN.encode()).hexdigest()]},
          "limits": {"writes_per_minute": 20}}


def start_call(svc, *extra, clid="0215550199", ref="cli-1") -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORMA_C2D_")}
    env.update(PLATFORMA_C2D_TOKEN=TOKEN, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "platforma_c2d.cli", "call", "1001", "0215550100",
         "--clid", clid, "--ref", ref, "--url", svc.url, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def completed_call(make_service, sipp, talk_ms: int, timeout: float):
    """``call`` against phones that answer at once and a callee that talks
    ``talk_ms``; returns (service, stdout, the state lines split in words)
    once it exited 0."""
    svc = make_service(CONFIG)
    sipp("agent", AGENT_PORT, uas_scenario())
    sipp("trunk", TRUNK_PORT, uas_scenario(talk_ms=talk_ms))
    proc = start_call(svc)
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, (out, err)
    assert "Traceback" not in err
    return svc, out, [line.split() for line in out.splitlines() if line[:2].isdigit()]


def wait_line(proc, word: str, timeout: float = 20) -> list[str]:
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            seen.append(line.rstrip())
            if word in line:
                return seen
        elif proc.poll() is not None:
            break
    raise AssertionError(f"no {word!r} line: {seen}")


def test_a_long_call_is_followed_to_its_end_within_the_rate_limit(asterisk, make_service, sipp):
    """20 writes a minute for the token: a call connected for 12 s (a few of
    the command's 5 s polls of a connected call) still ends with exit 0."""
    svc, out, lines = completed_call(make_service, sipp, talk_ms=12000, timeout=90)
    states = [words[2] for words in lines]
    # One line per state seen, in order (a fast phone may answer before the
    # first poll: a state can be skipped, never repeated or reordered).
    order = ["dialing_agent", "dialing_callee", "connected", "ended"]
    assert states[-2:] == ["connected", "ended"], out
    assert states == sorted(set(states), key=order.index), out
    assert '"reason": "completed"' in out
    # The token still has budget left for the CRM.
    r = svc.http.get("/click2dial/calls", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200


def test_ctrl_c_hangs_the_call_up(asterisk, make_service, sipp):
    svc = make_service(CONFIG)
    agent = sipp("agent", AGENT_PORT, uas_scenario())
    sipp("trunk", TRUNK_PORT, uas_scenario(talk_ms=60000))
    proc = start_call(svc)
    wait_line(proc, "connected")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert "interrupted: cancelling call" in err and "Traceback" not in err
    # SPEC §2: hung up through the API after the callee answered: completed, by the API.
    assert '"reason": "completed"' in out and '"ended_by": "api"' in out, out
    assert agent.wait_for(lambda m: m.direction == "received" and m.method == "BYE")
    assert asterisk.wait_idle() == ([], [])


def test_every_state_is_shown_even_one_shorter_than_a_poll(asterisk, make_service, sipp):
    """SPEC §8 "showing each state": phones that answer at once and a 300 ms
    talk — states far shorter than the polling interval — are all shown,
    in order, each once."""
    _svc, out, lines = completed_call(make_service, sipp, talk_ms=300, timeout=60)
    assert [words[2] for words in lines] == ["dialing_agent", "dialing_callee", "connected", "ended"], out
    assert lines[-1][3:] == ["reason=completed"], out


def test_a_refused_call_names_each_bad_field(asterisk, make_service):
    """SPEC §1: every invalid field is reported, by name — by the command too."""
    svc = make_service(CONFIG)
    proc = start_call(svc, clid="Random", ref="bad ref")
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "400 invalid-request" in err
    lines = err.splitlines()
    assert any(line.strip().startswith("outbound_id:") for line in lines), err
    assert any(line.strip().startswith("call_ref:") for line in lines), err
    assert svc.http.get("/click2dial/calls", headers={"Authorization": f"Bearer {TOKEN}"}).json()["total"] == 0


def test_call_without_a_token_says_where_the_token_goes_and_places_nothing(asterisk, make_service):
    svc = make_service(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORMA_C2D_")}
    res = subprocess.run([sys.executable, "-m", "platforma_c2d.cli", "call", "1001", "0215550100",
                          "--clid", "0215550199", "--url", svc.url], capture_output=True, text=True,
                         env=env, timeout=60)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "401 unauthorized" in res.stderr
    assert "put it in PLATFORMA_C2D_TOKEN or in a file read with --token-file" in res.stderr
    listed = svc.http.get("/click2dial/calls", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert listed["calls"] == []
