"""``platforma-c2d check`` reads the dialplan of the real Asterisk and finds
one that never hands the agents' calls to customers to the Stasis app
(issue: check said all was well on such a PBX). The CLI is the bench
Asterisk's own, reached with ``--asterisk-rx``."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run_check(asterisk, service, *agents: str) -> subprocess.CompletedProcess:
    """``check --agent …`` with the CLI of the bench's Asterisk."""
    args = [a for agent in agents for a in ("--agent", agent)]
    return subprocess.run([sys.executable, "-m", "platforma_c2d.cli", "check",
                           "--config", str(service.config_path), *args,
                           "--asterisk-rx", f"chroot {asterisk.root} asterisk -rx"],
                          capture_output=True, text=True, timeout=120)


def dialplan_lines(res, level: str) -> list[str]:
    return [line for line in res.stdout.splitlines() if line.startswith(f"{level:<4} dialplan:")]


@pytest.fixture
def dialplan(asterisk):
    """The dialplan file holding our [c2d-agents] (extensions.conf, or the
    administrator's extensions_c2d.conf), put back (and reloaded) after the test."""
    etc = asterisk.root / "etc/asterisk"
    conf = next(f for f in (etc / "extensions_c2d.conf", etc / "extensions.conf")
                if f.exists() and "[c2d-agents]" in f.read_text())
    saved = conf.read_text()
    yield conf
    conf.write_text(saved)
    asterisk.cli("dialplan reload")
    asterisk.cli("dialplan set global C2D_APP click2dial")


@pytest.mark.admin_configs
def test_check_says_the_agents_calls_reach_the_stasis_app(asterisk, service):
    res = run_check(asterisk, service, "1001", "2001")
    assert dialplan_lines(res, "FAIL") == [], res.stdout
    oks = dialplan_lines(res, "ok")
    assert any("from context c2d-agents (1001" in line and "reach Stasis(click2dial)" in line
               for line in oks), res.stdout
    assert any("from context c2d-webrtc (" in line for line in oks), res.stdout
    assert "ok   dialplan: callee legs are dialled from context c2d-trunk-leg" in res.stdout
    assert "ok   dialplan: legs keep their connected line through [c2d-connected-line]" in res.stdout


def one_failure_after(asterisk, service, dialplan, old: str, new: str) -> str:
    """Replace ``old`` by ``new`` in the dialplan, reload, run check: its one dialplan FAIL line."""
    text = dialplan.read_text()
    assert old in text
    dialplan.write_text(text.replace(old, new))
    asterisk.cli("dialplan reload")
    res = run_check(asterisk, service, "1001")
    assert res.returncode == 1, res.stdout
    [fail] = dialplan_lines(res, "FAIL")
    return fail


@pytest.mark.admin_configs
def test_check_fails_when_the_trunk_leg_context_is_not_merged(asterisk, service, dialplan):
    fail = one_failure_after(asterisk, service, dialplan, "[c2d-trunk-leg]", "[c2d-trunk-leg-unused]")
    assert "context c2d-trunk-leg of [dial] trunk_leg_context does not exist in the dialplan" in fail


def test_check_fails_when_the_connected_line_subroutine_is_not_merged(asterisk, service, dialplan):
    """The global says two-party bridges, the subroutine is gone: the trunk
    would be told the agent's identity (docs/decisions/0015)."""
    fail = one_failure_after(asterisk, service, dialplan, "[c2d-connected-line]", "[c2d-connected-line-old]")
    assert "context c2d-connected-line of the C2D_CONNECTED_LINE_SUB global does not exist" in fail
    assert "the trunk would be told the agent's identity" in fail


@pytest.mark.admin_configs
def test_check_fails_when_the_agents_context_does_not_include_ours(asterisk, service, dialplan):
    fail = one_failure_after(asterisk, service, dialplan, "[c2d-agents]\ninclude => c2d-webrtc",
                             "[c2d-agents]\nexten => _X.,1,Dial(PJSIP/${EXTEN}@trunk,30)\n"
                             " same => n,Hangup()")
    assert "agent 1001 (context c2d-agents)" in fail and "never reaches Stasis(click2dial)" in fail
    assert "it runs Dial, Hangup" in fail and "context=c2d-agents" in fail


@pytest.mark.admin_configs
def test_check_fails_when_our_context_is_missing(asterisk, service, dialplan):
    fail = one_failure_after(asterisk, service, dialplan, "[c2d-agents]", "[c2d-agents-old]")
    assert "agent 1001 (context c2d-agents)" in fail
    assert "context c2d-agents does not exist in the dialplan" in fail


def test_check_fails_when_the_dialplan_hands_calls_to_another_app(asterisk, service, dialplan):
    asterisk.cli("dialplan set global C2D_APP crm-dialer")
    res = run_check(asterisk, service, "1001")
    assert res.returncode == 1, res.stdout
    fails = dialplan_lines(res, "FAIL")
    assert fails and all("Stasis(crm-dialer), but [ari] app is click2dial" in f for f in fails[:1]), res.stdout
    assert "set C2D_APP=click2dial" in fails[0]
