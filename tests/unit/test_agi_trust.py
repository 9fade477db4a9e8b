"""What a FastAGI session may trust (platforma_c2d.agi.trust; docs/security.md).

A caller controls some environment values (From user, display name, the
dialled number) and Asterisk writes an encoded newline in them as it is.
These tests send the environment a hostile caller makes Asterisk write,
through the real protocol code, to a fake Asterisk (tests/unit/test_agi.py)
and to the real server; the attack on the real Asterisk is in
tests/integration/test_toll_fraud.py.
"""

from __future__ import annotations

import random
import socket
import threading

import pytest

from platforma_c2d.agi.server import STATUS_UNTRUSTED, AgiServer
from platforma_c2d.agi.trust import AgiRefused, check_secret, parse_environment
from platforma_c2d.calls.policy import Policy
from platforma_c2d.clid.picker import ClidPicker
from platforma_c2d.config import loads_config
from platforma_c2d.agi.scripts import AgiScripts
from platforma_c2d.store.clids import ClidStore
from tests.unit.test_agi import HEADERS, agi_env, hang_up, journal, run_session  # noqa: F401

SECRET = "s3cret-of-the-pbx"


def lines(env: dict) -> list[str]:
    """The lines Asterisk writes for ``env`` (a value's newline starts a line)."""
    return "".join(f"{k}: {v}\n" for k, v in env.items()).split("\n")[:-1]


def secret_scripts(journal, secret=SECRET):
    cfg = loads_config("", env={})
    picker = ClidPicker(cfg.clid, ClidStore(journal.engine), rng=random.Random(7))
    return AgiScripts(journal, picker, Policy(cfg.clid, cfg.policy), secret=secret)


# --------------------------------------------------------------------------
# the environment
# --------------------------------------------------------------------------


def test_asterisks_own_environment_is_read_whole():
    env = parse_environment(lines(agi_env(secret=SECRET)))
    assert env["agi_extension"] == "0215550100" and env["agi_accountcode"] == ""
    assert env["agi_arg_1"] == SECRET


@pytest.mark.parametrize("field,value,why", [
    ("agi_extension", "0900123456,,f(0999)\nagi_extension: 0215550100", "given twice"),
    ("agi_callerid", "3001\nagi_uniqueid: 1700000000.1", "given twice"),
    ("agi_callerid", "3001\nforged line", "not 'key: value'"),
    ("agi_callerid", "3001\nagi_forged: 1", "unknown key"),
    ("agi_extension", "0215550100 ", "stray space"),
    ("agi_extension", " 0215550100", "stray space"),
    ("agi_calleridname", "Agent\r", "control character"),
    ("agi_dnid", "0215550100\x00", "control character"),
    ("agi_extension", "0215550100\n", "without agi_accountcode"),   # ends the environment early
])
def test_a_forged_environment_is_refused(field, value, why):
    env = agi_env()
    env[field] = value
    raw = lines(env)
    if "\n" in value and value.endswith("\n"):
        raw = raw[:raw.index("")]                     # the blank line ends the environment
    with pytest.raises(AgiRefused, match=why):
        parse_environment(raw)


#: Our Asterisk: the administrator stored the secret in AstDB.
OURS = {"astdb": {"c2d/agi_secret": SECRET}}


class _Peer:
    """What check_secret asks of a session: its environment and AstDB."""

    def __init__(self, env, astdb):
        self.env, self.astdb, self.asked = env, astdb, []

    def database_get(self, family, key):
        self.asked.append(f"{family}/{key}")
        return self.astdb.get(f"{family}/{key}")


def test_the_secret_is_asked_of_the_peers_astdb_and_compared_whole():
    check_secret(_Peer(agi_env(), {"c2d/agi_secret": SECRET}), SECRET)
    nothing_asked = _Peer(agi_env(), {})
    check_secret(nothing_asked, "")                   # none asked
    assert nothing_asked.asked == []
    for held in (None, "", SECRET[:-1], SECRET + "x", SECRET.upper()):
        peer = _Peer(agi_env(), {} if held is None else {"c2d/agi_secret": held})
        with pytest.raises(AgiRefused, match="c2d/agi_secret") as refused:
            check_secret(peer, SECRET)
        assert peer.asked == ["c2d/agi_secret"] and SECRET not in str(refused.value)


def test_the_secret_given_as_an_agi_argument_is_refused_even_with_astdb_right():
    """The form of earlier versions put the secret where Asterisk logs it."""
    for env in (agi_env(secret=SECRET), {**agi_env(secret="x"), "agi_arg_2": SECRET}):
        peer = _Peer(env, {"c2d/agi_secret": SECRET})
        with pytest.raises(AgiRefused, match="given as an AGI.. argument") as refused:
            check_secret(peer, SECRET)
        assert peer.asked == [] and SECRET not in str(refused.value)


# --------------------------------------------------------------------------
# sessions
# --------------------------------------------------------------------------


def test_a_session_without_the_secret_journals_nothing_and_sets_nothing(journal):
    for env, astdb in ((agi_env(), {}), (agi_env(), {"c2d/agi_secret": "guess-guess"}),
                       (agi_env(secret=SECRET), {})):
        with pytest.raises(AgiRefused):
            run_session(secret_scripts(journal), env, HEADERS, astdb=astdb)
    assert journal.list() == ([], 0)
    status, fake = run_session(secret_scripts(journal), agi_env(), HEADERS, **OURS)
    assert status == "OK" and dict(fake.sets)["C2D_CALLEE"] == "0215550100"
    assert fake.commands[0] == "DATABASE GET c2d agi_secret"     # before anything is read


def test_a_forged_hangup_session_ends_no_call(journal):
    scripts = secret_scripts(journal)
    _status, fake = run_session(scripts, agi_env(), HEADERS, **OURS)
    call_id = dict(fake.sets)["C2D_CALL_ID"]
    with pytest.raises(AgiRefused):
        hang_up(scripts, call_id, "ANSWER")          # no AstDB: a local process
    assert journal.get(call_id)["state"] == "dialing_callee"


def test_the_hangup_of_another_channel_ends_no_call(journal):
    scripts = secret_scripts(journal, "")
    _status, fake = run_session(scripts, agi_env(), HEADERS)
    call_id = dict(fake.sets)["C2D_CALL_ID"]
    env = agi_env(script="click2dial-hangup", exten="s")
    run_session(scripts, env, {"C2D_CALL_ID": call_id, "DIALSTATUS": "ANSWER",
                               "UNIQUEID": "1796624930.99"})
    assert journal.get(call_id)["state"] == "dialing_callee"


def test_the_channel_identity_comes_from_the_channel_not_the_environment(journal):
    """An environment that disagrees with the channel (a forged unique id or
    extension that slipped past) is refused; the journal names the channel's own."""
    for name, value in (("UNIQUEID", "1700000000.1"), ("EXTEN", "0900123456")):
        with pytest.raises(AgiRefused, match="not the channel's"):
            run_session(secret_scripts(journal, ""), agi_env(), {**HEADERS, name: value})
    assert journal.list() == ([], 0)
    run_session(secret_scripts(journal, ""), agi_env(), HEADERS)
    [call], _ = journal.list()
    assert journal.get_row(call["id"])["agent_channel"] == "1796624930.7"


def test_a_value_with_a_newline_cannot_answer_the_next_command(journal):
    """A variable whose value carries ``)\\n200 result=1 (`` would shift every
    later answer by one line: the session notices before it sets anything."""
    forged = {**HEADERS, "C2D_CALL_REF": "ok)\n200 result=1 (0900123456"}
    with pytest.raises(AgiRefused, match="out of step"):
        run_session(secret_scripts(journal, ""), agi_env(), forged)
    assert journal.list() == ([], 0)


def test_the_server_tells_the_dialplan_a_refused_session_is_untrusted(journal):
    server = AgiServer(("127.0.0.1", 0), secret_scripts(journal), max_connections=2,
                       read_timeout_s=3)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    try:
        untrusted = f'SET VARIABLE "C2D_STATUS" "{STATUS_UNTRUSTED}"\n'.encode()
        # A forged environment: refused before anything is asked.
        conn = socket.create_connection(server.server_address)
        conn.settimeout(3)
        env = {**agi_env(), "agi_callerid": "3001\nagi_uniqueid: 1700000000.1"}
        conn.sendall(("".join(f"{k}: {v}\n" for k, v in env.items()) + "\n").encode())
        assert conn.recv(200) == untrusted
        conn.close()
        # A valid-looking environment from a peer that cannot answer the challenge.
        for answer in (b"200 result=0\n", b"200 result=1 (guess-guess)\n"):
            conn = socket.create_connection(server.server_address)
            conn.settimeout(3)
            conn.sendall(("".join(f"{k}: {v}\n" for k, v in agi_env().items()) + "\n").encode())
            assert conn.recv(200) == b"DATABASE GET c2d agi_secret\n"
            conn.sendall(answer)
            assert conn.recv(200) == untrusted
            conn.close()
    finally:
        server.shutdown()
        server.server_close()
    assert journal.list() == ([], 0)


def test_connections_that_never_show_the_secret_do_not_take_asterisks_places(journal):
    """Ten silent connections against ``max_connections = 1`` and
    ``max_unauthenticated = 3``: a peer that shows the secret is still
    served (the oldest silent ones are closed for newer ones), and a silent
    one is closed once ``auth_timeout_s`` is over."""
    server = AgiServer(("127.0.0.1", 0), secret_scripts(journal), max_connections=1,
                       read_timeout_s=5, max_unauthenticated=3, auth_timeout_s=1.0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    silent = []
    try:
        silent = [socket.create_connection(server.server_address) for _ in range(10)]
        asterisk = socket.create_connection(server.server_address)
        asterisk.settimeout(3)
        asterisk.sendall(("".join(f"{k}: {v}\n" for k, v in agi_env().items()) + "\n").encode())
        assert asterisk.recv(200) == b"DATABASE GET c2d agi_secret\n"
        asterisk.sendall(f"200 result=1 ({SECRET})\n".encode())
        assert asterisk.recv(200).startswith(b"GET FULL VARIABLE")    # trusted: the call is read
        asterisk.close()
        last = silent[-1]
        last.settimeout(5)
        assert last.recv(1) == b""                       # its time to authenticate is over
        assert server.slots.counts[0] <= 3
    finally:
        for s in silent:
            s.close()
        server.shutdown()
        server.server_close()
    assert journal.list() == ([], 0)
