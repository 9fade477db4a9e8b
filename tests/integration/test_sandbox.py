"""``platforma-c2d sandbox``: the real service against a simulated PBX, through
the public API (no Asterisk). Calls ring, answer, fail and end as on a real
PBX; the sandbox says it is one, and refuses production settings."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from platforma_c2d.http import examples
from testbed.sandbox import SandboxProcess

BODY = {"agent": "1001", "callee": "0215550100", "outbound_id": "random", "call_ref": "sandbox-1"}


@pytest.fixture
def sandbox(workdir):
    box = SandboxProcess(workdir).start()
    yield box
    box.stop()


def test_the_sandbox_places_follows_and_ends_calls_through_the_public_api(sandbox):
    r = sandbox.http.post("/click2dial/calls", json=BODY)
    assert r.status_code == 201 and r.headers["X-Platforma-Sandbox"] == "true", r.text
    call = r.json()
    assert sandbox.wait_state(call["id"], "dialing_callee")["state"] == "dialing_callee"
    assert sandbox.wait_state(call["id"], "connected")["state"] == "connected"
    # The agent is busy with it: a second call is refused, exactly as the document's example says.
    busy = sandbox.http.post("/click2dial/calls", json={**BODY, "call_ref": "sandbox-2"})
    assert busy.status_code == 409 and busy.json() == examples.ERRORS["agent-busy"]
    ended = sandbox.http.delete(f"/click2dial/calls/{call['id']}").json()
    assert (ended["state"], ended["reason"], ended["ended_by"]) == ("ended", "completed", "api")
    history = sandbox.http.get(f"/click2dial/calls/{call['id']}/history").json()
    assert [s["state"] for s in history["states"]] == ["dialing_agent", "dialing_callee", "connected", "ended"]


@pytest.mark.parametrize("changes, reason, ended_by", [
    ({"callee": "0215550486"}, "callee_busy", "callee"),
    ({"callee": "0215550404"}, "callee_unavailable", "callee"),
    ({"callee": "0215550200"}, "completed", "callee"),          # answers, hangs up after 3 s
    ({"agent": "1099"}, "agent_no_answer", "timeout"),
    ({"agent": "1086"}, "agent_busy", "agent"),
])
def test_sandbox_numbers_end_as_a_real_pbx_would(sandbox, changes, reason, ended_by):
    call = sandbox.http.post("/click2dial/calls", json={**BODY, **changes}).json()
    final = sandbox.wait_state(call["id"], "ended", timeout=20)
    assert (final["reason"], final["ended_by"]) == (reason, ended_by), final


def test_the_sandbox_is_marked_on_health_answers_and_its_log(sandbox):
    health = sandbox.http.get("/healthz")
    assert health.json()["sandbox"] is True and health.headers["X-Platforma-Sandbox"] == "true"
    assert sandbox.http.get("/click2dial/calls").headers["X-Platforma-Sandbox"] == "true"
    lines = [json.loads(x) for x in sandbox.log_path.read_text().splitlines() if x.startswith("{")]
    assert any(line.get("event") == "sandbox" and line["msg"].startswith("SANDBOX:") for line in lines)
    # A first try of the sandbox warns of nothing but being one (no advice about a dialplan it has not).
    warnings = [line["msg"] for line in lines if line["level"] == "WARNING" and line.get("event") != "sandbox"]
    assert warnings == []


@pytest.mark.parametrize("config, env, listen, says", [
    ('[ari]\nurl = "http://192.0.2.10:8088"\npassword = "real"\n', {}, None, "production config"),
    ('[store]\nurl = "sqlite:////var/lib/platforma-c2d/calls.sqlite3"\n', {}, None, "production config"),
    ("", {"PLATFORMA_C2D_ARI_URL": "http://192.0.2.10:8088"}, None, "PLATFORMA_C2D_ARI_URL"),
    ("", {}, "0.0.0.0:8080", "loopback only"),
    # Simulated calls' events, signed with the real secret, would reach the real CRM.
    ('[[webhooks.endpoints]]\nurl = "https://crm.example.com/hooks"\nsecret = "real"\n', {}, None,
     "crm.example.com is not loopback"),
    ("", {"PLATFORMA_C2D_WEBHOOKS_ALLOWED_URL_PREFIXES": "https://crm.example.com/",
          "PLATFORMA_C2D_WEBHOOKS_CALLBACK_SECRET": "real"}, None, "crm.example.com is not loopback"),
])
def test_the_sandbox_refuses_to_run_with_production_settings(workdir, config, env, listen, says):
    box = SandboxProcess(workdir, config)
    cmd = box.command()
    if listen:
        cmd[cmd.index("--listen") + 1] = listen
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORMA_C2D_")}
    done = subprocess.run(cmd, env={**clean, **env}, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "sandbox refused" in done.stderr and says in done.stderr, done.stderr
