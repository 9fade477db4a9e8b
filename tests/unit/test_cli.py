"""``platforma-c2d`` commands: bad configuration is one clear line per problem and exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from platforma_c2d.config.checks import trunk_of


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "platforma_c2d.cli", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_bad_config_lists_every_problem_and_exits_2(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[dial]\nagent_ring_timeout_s = "abc"\nmax_call_duration_s = -1\n'
                   '[clid]\ndefault = "12345"\n[bogus]\nx = 1\n')
    for command in ("serve", "agi", "check"):
        res = run(command, "--config", str(cfg))
        assert res.returncode == 2, (command, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert all(line.startswith("config error: ") for line in lines), res.stderr
        text = res.stderr
        for key in ("dial.agent_ring_timeout_s", "dial.max_call_duration_s", "clid.default", "bogus"):
            assert key in text, (key, text)
        assert "Traceback" not in text


def test_missing_config_file_is_exit_2(tmp_path):
    res = run("serve", "--config", str(tmp_path / "nope.toml"))
    assert res.returncode == 2 and "nope.toml" in res.stderr and "Traceback" not in res.stderr


def test_bad_environment_override_names_the_variable(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PLATFORMA_C2D_DIAL_TONE_S": "loud"}
    res = run("check", "--config", str(tmp_path / "none.toml"), env={**env, **_pyenv()})
    assert res.returncode == 2 and "PLATFORMA_C2D_DIAL_TONE_S" in res.stderr


def _pyenv():
    import os

    return {k: v for k, v in os.environ.items() if k.startswith(("PYTHON", "VIRTUAL_ENV", "HOME"))}


def test_call_without_a_service_is_a_clear_error(tmp_path):
    res = run("call", "1001", "0215550100", "--url", "http://127.0.0.1:9")
    assert res.returncode == 1 and "cannot reach the service" in res.stderr


@pytest.mark.parametrize("dial,expected", [
    ("PJSIP/{number}@trunk", ("PJSIP", "trunk")),
    ("PJSIP/trunk/sip:{number}@127.0.0.1:5070", ("PJSIP", "trunk")),
    ("PJSIP/carrier-a/sip:{number}@sbc.example.net", ("PJSIP", "carrier-a")),
    ("PJSIP/{number}", ("PJSIP", "")),
])
def test_check_finds_the_trunk_endpoint_in_every_dial_string_form(dial, expected):
    assert trunk_of(dial) == expected


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("url,expected", [
    ("sqlite:////proc/c2d/calls.sqlite3", "store.url: cannot open the call journal"),
    ("postgresql+nosuchdriver://c2d:s3cret-pw@127.0.0.1/c2d", "store.url: cannot open the call journal"),
])
def test_serve_with_a_store_it_cannot_use_says_so_in_one_line(tmp_path, url, expected):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[store]\nurl = "{url}"\n[http]\nlisten = "127.0.0.1:{_free_port()}"\n'
                   '[ari]\nurl = "http://127.0.0.1:9"\npassword = "not-the-sample"\n')
    res = run("serve", "--config", str(cfg))
    assert res.returncode == 1, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], res.stderr
    assert "Traceback" not in res.stderr and "s3cret-pw" not in res.stderr
    # check finds the same problem without creating anything.
    res = run("check", "--config", str(cfg))
    assert res.returncode == 1 and "FAIL store.url:" in res.stdout and "s3cret-pw" not in res.stdout


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = tmp_path / "c.toml"
        cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/c.sqlite3"\n'
                       f'[http]\nlisten = "127.0.0.1:{port}"\n[ari]\nurl = "http://127.0.0.1:9"\npassword = "not-the-sample"\n')
        res = run("serve", "--config", str(cfg))
    assert res.returncode == 1
    assert f"error: http.listen: cannot listen on 127.0.0.1:{port}" in res.stderr
    assert "Traceback" not in res.stderr


def test_check_does_not_create_the_store(tmp_path):
    db = tmp_path / "new" / "calls.sqlite3"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{db}"\n[ari]\nurl = "http://127.0.0.1:9"\npassword = "not-the-sample"\n')
    res = run("check", "--config", str(cfg))
    assert "ok   store: usable" in res.stdout
    assert not db.parent.exists()


class _Answer:
    def __init__(self, status, body):
        self.status_code, self._body = status, body

    def json(self):
        return self._body


class _History:
    """Answers GET .../history from a list: one answer per request, in order."""

    def __init__(self, *answers):
        self.answers, self.asked = list(answers), 0

    def get(self, _url):
        self.asked += 1
        return self.answers.pop(0)


def _states(out: str) -> list[str]:
    return [line.split()[2] for line in out.splitlines()]


def test_call_shows_a_state_shorter_than_a_poll_from_the_history(capsys):
    from platforma_c2d.cli_call import _show_states

    history = {"id": "c" * 32, "states": [
        {"state": "dialing_agent", "at": "2026-11-30T09:30:00.120Z", "reason": None},
        {"state": "dialing_callee", "at": "2026-11-30T09:30:01.871Z", "reason": None},
        {"state": "connected", "at": "2026-11-30T09:30:02.402Z", "reason": None}]}
    http, shown = _History(_Answer(200, history)), []
    _show_states(http, {"id": "c" * 32, "state": "dialing_agent", "created_at": "2026-11-30T09:30:00.120Z"}, shown)
    assert http.asked == 0                      # the first state needs no history
    _show_states(http, {"id": "c" * 32, "state": "connected", "answered_at": "2026-11-30T09:30:02.402Z"}, shown)
    assert _states(capsys.readouterr().out) == ["dialing_agent", "dialing_callee", "connected"]
    assert http.asked == 1


def test_call_never_repeats_or_reorders_states_when_the_history_fails_once(capsys):
    from platforma_c2d.cli_call import _show_states

    full = {"id": "c" * 32, "states": [{"state": s, "at": None, "reason": None}
                                       for s in ("dialing_agent", "dialing_callee", "connected", "ended")]}
    http, shown = _History(_Answer(503, {"error": "asterisk-unavailable"}), _Answer(200, full)), []
    for state in ("dialing_agent", "connected", "connected", "ended"):
        _show_states(http, {"id": "c" * 32, "state": state, "reason": "completed" if state == "ended" else None},
                     shown)
    out = capsys.readouterr().out
    assert _states(out) == ["dialing_agent", "connected", "ended"], out
    assert out.splitlines()[-1].endswith("ended reason=completed")


def test_check_modules_needs_one_running_cdr_backend():
    from platforma_c2d.config.modules_check import CDR_BACKENDS, OPTIONAL, REQUIRED, check_modules

    running = [{"name": n, "status": "Running"} for n in (*REQUIRED, *OPTIONAL)]
    lines = check_modules(running + [{"name": "cdr_adaptive_odbc.so", "status": "Running"}])
    assert [level for level, _ in lines] == ["ok", "ok"]
    lines = check_modules(running + [{"name": "cdr_custom.so", "status": "Not Running"}])
    assert [level for level, _ in lines] == ["FAIL"]
    assert "cdr_custom.so refused to load" in lines[0][1] and "cdr_adaptive_odbc.so is not loaded" in lines[0][1]
    assert set(CDR_BACKENDS) == {"cdr_custom.so", "cdr_adaptive_odbc.so"}


def test_check_modules_a_missing_required_module_fails_and_res_agi_warns():
    from platforma_c2d.config.modules_check import REQUIRED, check_modules

    mods = [{"name": n, "status": "Running"} for n in REQUIRED if n != "func_cdr.so"]
    lines = check_modules(mods + [{"name": "cdr_custom.so", "status": "Running"}])
    assert ("FAIL", next(line for level, line in lines if level == "FAIL")) in lines
    assert any(level == "FAIL" and "func_cdr.so is not loaded" in line for level, line in lines)
    assert any(level == "WARN" and "res_agi.so" in line for level, line in lines)


def test_version_option(capsys):
    import pytest

    from platforma_c2d import __version__
    from platforma_c2d.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"platforma-c2d {__version__}"


def test_serve_refuses_the_shipped_ari_password(tmp_path):
    """SPEC §7: the sample password is refused before anything starts."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "c.sqlite3"}"\n'
                   f'[http]\nlisten = "127.0.0.1:{_free_port()}"\n')
    res = run("serve", "--config", str(cfg))
    assert res.returncode == 2 and "ari.password" in res.stderr and "change-me'" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "c.sqlite3").exists()


def test_check_with_asterisk_http_off_says_where_to_turn_it_on(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/c.sqlite3"\n'
                   '[ari]\nurl = "http://127.0.0.1:9"\npassword = "not-the-sample"\n')
    res = run("check", "--config", str(cfg))
    assert res.returncode == 1
    assert any(line.startswith("FAIL ari.url: cannot reach Asterisk at http://127.0.0.1:9")
               and "enabled = yes in http.conf" in line for line in res.stdout.splitlines()), res.stdout


def test_check_warns_when_any_caller_id_and_any_destination_are_open(tmp_path):
    """docs/security.md checklist item 8: an empty [clid] allowed (caller-ID spoofing) and
    no callee policy (international and premium numbers) are warned about, not failed."""
    base = f'[store]\nurl = "sqlite:///{tmp_path}/c.sqlite3"\n[ari]\nurl = "http://127.0.0.1:9"\n'
    cfg = tmp_path / "open.toml"
    cfg.write_text(base)
    warns = [line for line in run("check", "--config", str(cfg)).stdout.splitlines() if line.startswith("WARN")]
    assert any(line.startswith("WARN clid.allowed: empty") for line in warns), warns
    assert any(line.startswith("WARN policy: neither callee_allow_prefixes nor callee_deny_prefixes")
               for line in warns), warns
    cfg = tmp_path / "closed.toml"
    cfg.write_text(base + '[clid]\nallowed = ["0115550000", "0115550001", "0115550002"]\n'
                   '[policy]\ncallee_deny_prefixes = ["00", "0900"]\n')
    warns = [line for line in run("check", "--config", str(cfg)).stdout.splitlines() if line.startswith("WARN")]
    assert not any(line.startswith(("WARN clid.", "WARN policy")) for line in warns), warns


def test_check_warns_on_a_short_webhook_signing_secret_without_showing_it(tmp_path):
    """A delivery's v1 is HMAC-SHA256 over a key the receiver holds too: a short key
    is found from one signed delivery by trying, and then any event can be forged."""
    base = (f'[store]\nurl = "sqlite:///{tmp_path}/c.sqlite3"\n[ari]\nurl = "http://127.0.0.1:9"\n'
            '[[webhooks.endpoints]]\nname = "crm"\nurl = "https://crm.example.test/hooks"\n')
    cfg = tmp_path / "short.toml"
    cfg.write_text(base + 'secret = "hook-s3cret"\n[webhooks]\n'
                   'allowed_url_prefixes = ["https://crm.example.test/"]\ncallback_secret = "cb-s3cret"\n')
    res = run("check", "--config", str(cfg))
    warns = [line for line in res.stdout.splitlines() if line.startswith("WARN webhooks.")]
    assert [w.split(":")[0] for w in warns] == ["WARN webhooks.endpoints[crm].secret",
                                                "WARN webhooks.callback_secret"], res.stdout
    assert "hook-s3cret" not in res.stdout and "cb-s3cret" not in res.stdout
    cfg = tmp_path / "long.toml"
    cfg.write_text(base + f'secret = "{"a1" * 16}"\n[webhooks]\n'
                   f'allowed_url_prefixes = ["https://crm.example.test/"]\ncallback_secret = "{"b2" * 16}"\n')
    res = run("check", "--config", str(cfg))
    assert not [line for line in res.stdout.splitlines() if line.startswith("WARN webhooks.")], res.stdout


def test_call_refuses_a_token_on_the_command_line_and_reads_env_or_file(tmp_path):
    """A token in argv is in every local user's process list (ps): refused."""
    res = run("call", "1001", "0215550100", "--token", "s3cret", "--url", "http://127.0.0.1:9")
    assert res.returncode == 2 and "process list" in res.stderr and "s3cret" not in res.stderr
    from platforma_c2d.cli_call import bearer_token
    path = tmp_path / "token"
    path.write_text("from-file\nsecond line\n")
    assert bearer_token(None, str(path), {"PLATFORMA_C2D_TOKEN": "from-env"}) == "from-file"
    assert bearer_token(None, None, {"PLATFORMA_C2D_TOKEN": "from-env"}) == "from-env"
    assert bearer_token(None, None, {}) is None
    path.write_text("\n")
    with pytest.raises(ValueError, match="no token"):
        bearer_token(None, str(path), {})


def test_check_hep_judges_the_capture_only_when_hep_listen_is_set():
    from platforma_c2d.config.modules_check import check_hep

    running = [{"name": "res_hep.so", "status": "Running"}, {"name": "res_hep_pjsip.so", "status": "Running"}]
    assert check_hep(running, "") == []
    [(level, line)] = check_hep(running, "127.0.0.1:9060")
    assert level == "ok" and "127.0.0.1:9060" in line
    for modules in (running[:1], [running[0], {"name": "res_hep_pjsip.so", "status": "Not Running"}]):
        [(level, line)] = check_hep(modules, "127.0.0.1:9060")
        assert level == "WARN" and "res_hep_pjsip.so does not run" in line and "hold_after_503_s" in line
