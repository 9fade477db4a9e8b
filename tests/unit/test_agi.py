"""The FastAGI server's parts without Asterisk (SPEC §1, §6, §9).

The scripts are driven through the real protocol code (pyst2 over
:class:`AgiChannel`) by a fake Asterisk on the other end of a socket pair:
it sends an ``agi_*`` environment, answers ``GET VARIABLE`` from a dict and
records every ``SET VARIABLE``. The real Asterisk is in
tests/integration/test_agi.py.
"""

from __future__ import annotations

import random
import re
import socket
import threading
import time

import pytest

from platforma_c2d import rules
from platforma_c2d.agi.channel import MAX_LINE, AgiChannel, AgiClosed, LineReader
from platforma_c2d.agi.scripts import (
    AgiScripts, agent_from_channel_name, answered_seconds, script_name, status_for,
)
from platforma_c2d.calls.dialstatus import reason_for_dial
from platforma_c2d.agi.server import AgiServer
from platforma_c2d.calls.errors import ClidNotAllowed, DestinationNotAllowed
from platforma_c2d.calls.model import Call, Origin, Reason, State
from platforma_c2d.calls.policy import Policy
from platforma_c2d.clid.picker import ClidPicker
from platforma_c2d.config import loads_config
from platforma_c2d.store.clids import ClidStore
from platforma_c2d.store.journal import Journal

OUT_HEADER = "PJSIP_HEADER(read,X-Platforma-Outbound-ID)"
REF_HEADER = "PJSIP_HEADER(read,X-Platforma-Call-Ref)"


class FakeAsterisk(threading.Thread):
    """The Asterisk end of one FastAGI connection.

    ``env``: the agi_* environment; ``variables``: what GET VARIABLE answers
    (a missing name is unset). ``commands`` records every command line;
    ``sets`` the SET VARIABLE (name, value) pairs in order. ``hangup_after``:
    send an asynchronous ``HANGUP`` line before the answer to that command
    number (0-based). ``drop_on_set``: close the connection instead of
    answering the first SET VARIABLE (Asterisk gone mid-session).
    ``astdb``: what DATABASE GET answers, ``{"family/key": value}``.
    """

    def __init__(self, sock, env, variables, hangup_after=None, drop_on_set=False, astdb=None):
        super().__init__(daemon=True)
        self.astdb = dict(astdb or {})
        self.sock, self.env, self.variables = sock, env, dict(variables)
        self.hangup_after = hangup_after
        self.drop_on_set = drop_on_set
        self.commands: list[str] = []
        self.sets: list[tuple[str, str]] = []

    def header_names(self, prefix: str) -> str:
        """``PJSIP_HEADERS(prefix)`` as Asterisk 22 answers it: each copy's name, or
        nothing when no header starts with ``prefix`` or one that does is over 4,095 bytes."""
        headers = [("Via", "x"), ("From", "x"), ("To", "x")] + [
            (m.group(1), value) for key, value in self.variables.items()
            if (m := re.fullmatch(r"PJSIP_HEADER\(read,([^,]+)(?:,2)?\)", key))]
        matched = [(n, v) for n, v in headers if n.lower().startswith(prefix.lower())]
        if any(len(v) > 4095 for _n, v in matched):
            return ""
        return ",".join(n for n, _v in matched)

    def run(self):
        f = self.sock.makefile("rwb")
        try:
            f.write("".join(f"{k}: {v}\n" for k, v in self.env.items()).encode() + b"\n")
            f.flush()
            for raw in f:
                line = raw.decode().rstrip("\n")
                if len(self.commands) == self.hangup_after:
                    f.write(b"HANGUP\n")
                self.commands.append(line)
                get = re.fullmatch(r'GET VARIABLE "([^"]*)"', line)
                get_full = re.fullmatch(r'GET FULL VARIABLE "\$\{([^"]*)\}"', line)
                put = re.fullmatch(r'SET VARIABLE "([^"]*)" "([^"]*)"', line)
                echo = re.fullmatch(r'GET FULL VARIABLE "([0-9a-f]+)"', line)
                dbget = re.fullmatch(r"DATABASE GET (\S+) (\S+)", line)
                if dbget:
                    held = self.astdb.get(f"{dbget.group(1)}/{dbget.group(2)}")
                    f.write(b"200 result=0\n" if held is None else f"200 result=1 ({held})\n".encode())
                elif get:
                    # Asterisk reads into 1,024 bytes: a longer function value is lost.
                    value = self.variables.get(get.group(1), "")
                    if len(value) > 1023:
                        value = "" if get.group(1).endswith(")") else value[:1023]
                    f.write(f"200 result=1 ({value})\n".encode() if value else b"200 result=0\n")
                elif get_full:
                    # ... and a function (PJSIP_HEADER) into 4,096: longer is lost here too.
                    # The channel's identity is the environment's unless a test says otherwise.
                    name = get_full.group(1)
                    value = self.variables.get(name, self.env.get(IDENTITY.get(name, ""), ""))
                    if name.startswith("PJSIP_HEADERS("):
                        value = self.header_names(name[len("PJSIP_HEADERS("):-1])
                    if len(value) > 4095 and get_full.group(1).endswith(")"):
                        value = ""
                    f.write(f"200 result=1 ({value})\n".encode())
                elif echo:
                    f.write(f"200 result=1 ({echo.group(1)})\n".encode())
                elif put and self.drop_on_set:
                    return
                elif put:
                    self.sets.append((put.group(1), put.group(2)))
                    self.variables[put.group(1)] = put.group(2)
                    f.write(b"200 result=1\n")
                else:
                    f.write(b"510 Invalid or unknown command\n")
                f.flush()
        except OSError:
            pass
        finally:
            self.sock.close()

    @property
    def set_names(self) -> list[str]:
        return [name for name, _ in self.sets]


#: GET FULL VARIABLE of the channel's identity -> the environment key saying the same.
IDENTITY = {"CHANNEL(name)": "agi_channel", "CHANNEL(channeltype)": "agi_type",
            "UNIQUEID": "agi_uniqueid", "EXTEN": "agi_extension"}


def agi_env(script="click2dial", exten="0215550100", channel="PJSIP/3001-0000002a",
            tech="PJSIP", secret=None):
    """A whole environment as Asterisk 22 writes it (``secret``: agi_arg_1)."""
    env = {"agi_network": "yes", "agi_network_script": script,
           "agi_request": f"agi://127.0.0.1:4573/{script}", "agi_channel": channel,
           "agi_language": "en", "agi_type": tech, "agi_uniqueid": "1796624930.7",
           "agi_version": "22.1.0", "agi_callerid": "3001", "agi_calleridname": "unknown",
           "agi_callingpres": "0", "agi_callingani2": "0", "agi_callington": "0",
           "agi_callingtns": "0", "agi_dnid": exten, "agi_rdnis": "unknown",
           "agi_context": "c2d-agi-call", "agi_extension": exten, "agi_priority": "3",
           "agi_enhanced": "0.0", "agi_accountcode": "", "agi_threadid": "139803073750720"}
    if secret is not None:
        env["agi_arg_1"] = secret
    return env


@pytest.fixture
def journal(tmp_path):
    j = Journal(f"sqlite:///{tmp_path / 'calls.sqlite3'}")
    yield j
    j.close()


def make_scripts(journal, toml=""):
    cfg = loads_config(toml, env={})
    picker = ClidPicker(cfg.clid, ClidStore(journal.engine), rng=random.Random(7))
    return AgiScripts(journal, picker, Policy(cfg.clid, cfg.policy))


def run_session(scripts, env, variables, **kw):
    """Run one session against a fake Asterisk; returns (status, fake)."""
    ours, theirs = socket.socketpair()
    fake = FakeAsterisk(theirs, env, variables, **kw)
    fake.start()
    try:
        agi = AgiChannel.on_socket(ours, read_timeout_s=2, session_timeout_s=5)
        status = scripts.handle(agi)
    finally:
        ours.close()
        fake.join(timeout=5)
    return status, fake


HEADERS = {"CHANNEL(endpoint)": "3001", OUT_HEADER: "0215550199", REF_HEADER: "ord-42"}


# --------------------------------------------------------------------------
# pure parts
# --------------------------------------------------------------------------


@pytest.mark.parametrize("path,name", [("click2dial", "click2dial"), ("/click2dial", "click2dial"),
                                       ("click2dial?x=1", "click2dial"), ("", ""),
                                       ("click2dial-hangup", "click2dial-hangup")])
def test_script_name_is_the_agi_url_path(path, name):
    assert script_name({"agi_network_script": path}) == name


@pytest.mark.parametrize("channel,agent", [("PJSIP/3001-0000002a", "3001"),
                                           ("SIP/1001-00000001", "1001"),
                                           ("Local/0215550100@c2d-agi-00000001;2", ""),
                                           ("PJSIP/3001", ""), ("", "")])
def test_agent_is_the_endpoint_part_of_the_channel_name(channel, agent):
    assert agent_from_channel_name(channel) == agent


def test_status_invalid_callee_when_the_callee_is_among_the_bad_fields():
    exc = rules.ValidationError({"callee": "bad", "outbound_id": "bad"})
    assert status_for(exc) == ("invalid-callee", {"callee": "bad", "outbound_id": "bad"})


def test_status_invalid_request_for_other_bad_fields():
    assert status_for(rules.ValidationError({"call_ref": "bad"}))[0] == "invalid-request"
    assert status_for(rules.RuleError("outbound_id", "pool empty"))[0] == "invalid-request"


def test_status_of_policy_refusals_is_their_error_id():
    assert status_for(ClidNotAllowed("no", {"outbound_id": "x"}))[0] == "clid-not-allowed"
    assert status_for(DestinationNotAllowed("no", {"callee": "x"}))[0] == "destination-not-allowed"


@pytest.mark.parametrize("dialstatus,cause,reason", [
    ("ANSWER", "16", Reason.COMPLETED), ("BUSY", "17", Reason.CALLEE_BUSY),
    ("NOANSWER", "16", Reason.CALLEE_NO_ANSWER), ("CONGESTION", "34", Reason.CALLEE_UNAVAILABLE),
    ("CHANUNAVAIL", "20", Reason.CALLEE_UNAVAILABLE), ("CANCEL", "16", Reason.CANCELLED),
    ("", "16", Reason.CANCELLED), ("", "34", Reason.FAILED), ("", "", Reason.FAILED),
    ("INVALIDARGS", "16", Reason.FAILED), ("DONTCALL", "", Reason.FAILED),
])
def test_reason_from_dialstatus(dialstatus, cause, reason):
    assert reason_for_dial(dialstatus, cause) is reason


def test_answered_seconds_prefers_milliseconds():
    assert answered_seconds("12345", "12") == 12.345
    assert answered_seconds("", "12") == 12.0
    assert answered_seconds("", "") is None and answered_seconds("x", "-1") is None


# --------------------------------------------------------------------------
# the click2dial script
# --------------------------------------------------------------------------


def test_accepted_call_sets_clid_caller_id_cdr_and_status_last(journal):
    status, fake = run_session(make_scripts(journal), agi_env(), HEADERS)
    assert status == "OK"
    sets = dict(fake.sets)
    assert fake.set_names[-1] == "C2D_STATUS" and sets["C2D_STATUS"] == "OK"
    assert sets["C2D_CLID"] == sets["CALLERID(num)"] == sets["CDR(c2d_clid)"] == "0215550199"
    assert sets["CALLERID(name)"] == ""
    assert sets["C2D_CALL_REF"] == sets["CDR(call_ref)"] == "ord-42"
    assert sets["CDR(c2d_leg)"] == "agent" and sets["CDR(c2d_agent)"] == "3001"
    # [dial] for Dial(): the defaults, 90 s ring and 4 h after the answer.
    assert sets["C2D_RING_TIMEOUT"] == "90" and sets["C2D_MAX_DURATION_S"] == "14400"
    [call], total = journal.list()
    assert total == 1 and sets["C2D_CALL_ID"] == sets["CDR(c2d_call_id)"] == call["id"]
    assert (call["origin"], call["state"], call["agent"], call["callee"], call["clid"],
            call["call_ref"]) == ("agi", "dialing_callee", "3001", "0215550100", "0215550199",
                                  "ord-42")


def test_channel_variables_win_over_the_headers(journal):
    variables = {**HEADERS, "C2D_OUTBOUND_ID": "0215550177", "C2D_CALL_REF": "from-var"}
    status, fake = run_session(make_scripts(journal), agi_env(), variables)
    assert status == "OK"
    assert dict(fake.sets)["C2D_CLID"] == "0215550177"
    assert dict(fake.sets)["CDR(call_ref)"] == "from-var"
    assert not any("PJSIP_HEADER" in c for c in fake.commands), "headers read although vars set"


def test_an_empty_channel_variable_falls_back_to_the_header(journal):
    variables = {**HEADERS, "C2D_OUTBOUND_ID": "", "C2D_CALL_REF": "from-var"}
    _status, fake = run_session(make_scripts(journal), agi_env(), variables)
    assert dict(fake.sets)["C2D_CLID"] == "0215550199"
    assert dict(fake.sets)["C2D_CALL_REF"] == "from-var"


def test_headers_are_read_only_on_pjsip_channels(journal):
    status, fake = run_session(make_scripts(journal), agi_env(channel="SIP/3001-00000001",
                                                              tech="SIP"), HEADERS)
    assert status == "OK"
    assert not any("PJSIP" in c or "endpoint" in c for c in fake.commands), fake.commands
    assert journal.list()[0][0]["agent"] == "3001"
    assert dict(fake.sets)["C2D_CLID"] == "0115550000"  # [clid] default


def test_agent_from_the_channel_name_when_channel_endpoint_is_empty(journal):
    status, _fake = run_session(make_scripts(journal), agi_env(),
                                {k: v for k, v in HEADERS.items() if k != "CHANNEL(endpoint)"})
    assert status == "OK" and journal.list()[0][0]["agent"] == "3001"


def test_random_draws_from_the_pool(journal):
    status, fake = run_session(make_scripts(journal), agi_env(), {**HEADERS, OUT_HEADER: "random"})
    assert status == "OK" and dict(fake.sets)["C2D_CLID"] in ("0115550001", "0115550002")
    assert journal.list()[0][0]["outbound_id"] == "random"


def test_a_long_call_ref_is_cut_to_230(journal):
    _status, fake = run_session(make_scripts(journal), agi_env(),
                                {**HEADERS, REF_HEADER: "a" * 300})
    assert dict(fake.sets)["CDR(call_ref)"] == "a" * 230


def test_a_header_longer_than_agi_get_variable_reads_is_checked_whole_then_cut(journal):
    """GET VARIABLE gives nothing for a header over 1,023 bytes; SPEC §1: length alone never rejects."""
    _status, fake = run_session(make_scripts(journal), agi_env(), {**HEADERS, REF_HEADER: "a" * 3000})
    assert dict(fake.sets)["CDR(call_ref)"] == "a" * 230
    assert dict(fake.sets)["C2D_STATUS"] == "OK"


@pytest.mark.parametrize("variables", [
    {REF_HEADER: "a" * 1090 + ';x="evil"'},            # a bad character past the first 1,023
    {OUT_HEADER: "0215550199" + "9" * 1100},             # an outbound_id of 1,110 digits
    {"C2D_CALL_REF": "a" * 1100 + " b"},                 # a channel variable, too
])
def test_a_long_bad_value_is_refused_not_taken_for_absent(journal, variables):
    status, fake = run_session(make_scripts(journal), agi_env(), {**HEADERS, **variables})
    assert status == "invalid-request"
    assert "C2D_CLID" not in fake.set_names and "CALLERID(num)" not in fake.set_names


@pytest.mark.parametrize("header,field", [(OUT_HEADER, "outbound_id"), (REF_HEADER, "call_ref")])
def test_a_header_given_twice_is_refused_like_on_the_webrtc_path(journal, header, field):
    second = header.replace(")", ",2)")
    status, fake = run_session(make_scripts(journal), agi_env(), {**HEADERS, second: "0215550198"})
    assert status == "invalid-request"
    assert dict(fake.sets)["C2D_ERROR_FIELDS"] == field


@pytest.mark.parametrize("exten,variables,status,fields", [
    ("0215550100", {OUT_HEADER: "+27215550199"}, "invalid-request", "outbound_id"),
    ("0215550100", {OUT_HEADER: "Random"}, "invalid-request", "outbound_id"),
    ("0215550100", {REF_HEADER: "a b"}, "invalid-request", "call_ref"),
    ("12345", {}, "invalid-callee", "callee"),
    ("12345", {OUT_HEADER: "1"}, "invalid-callee", "callee,outbound_id"),
    ("0215550100", {"CHANNEL(endpoint)": "alice"}, "invalid-request", "agent"),
])
def test_refused_call_sets_the_error_id_and_nothing_to_dial_with(journal, exten, variables,
                                                                 status, fields):
    got, fake = run_session(make_scripts(journal), agi_env(exten=exten), {**HEADERS, **variables})
    assert got == status
    sets = dict(fake.sets)
    assert sets["C2D_STATUS"] == status and sets["C2D_ERROR_FIELDS"] == fields
    assert fake.set_names[-1] == "C2D_STATUS"
    assert not {"C2D_CLID", "CALLERID(num)", "CALLERID(name)", "C2D_CALL_REF"} & set(sets)
    [call], _ = journal.list()
    assert (call["origin"], call["state"], call["reason"]) == ("agi", "ended", "rejected")
    assert sets["C2D_CALL_ID"] == sets["CDR(c2d_call_id)"] == call["id"]


def test_refused_call_keeps_a_valid_call_ref_on_its_cdr(journal):
    _status, fake = run_session(make_scripts(journal), agi_env(),
                                {**HEADERS, OUT_HEADER: "12", REF_HEADER: "keep-me"})
    assert dict(fake.sets)["CDR(call_ref)"] == "keep-me"


def test_clid_outside_the_allowed_list_is_clid_not_allowed(journal):
    scripts = make_scripts(journal, '[clid]\ndefault = "0115550000"\npool = ["0115550001"]\n'
                                    'allowed = ["0115550000", "0115550001"]\n')
    status, _fake = run_session(scripts, agi_env(), HEADERS)
    assert status == "clid-not-allowed"


def test_denied_prefix_is_destination_not_allowed(journal):
    scripts = make_scripts(journal, '[policy]\ncallee_deny_prefixes = ["021"]\n')
    status, fake = run_session(scripts, agi_env(), HEADERS)
    assert status == "destination-not-allowed" and dict(fake.sets)["C2D_ERROR_FIELDS"] == "callee"


def test_random_with_an_empty_pool_is_invalid_request(journal):
    scripts = make_scripts(journal, "[clid]\npool = []\n")
    status, _fake = run_session(scripts, agi_env(), {**HEADERS, OUT_HEADER: "random"})
    assert status == "invalid-request"


@pytest.mark.parametrize("evil", ['0215550199" "x', "ord-42\\", "x)y", "a\tb", "ü", "ord 42"])
def test_raw_input_never_reaches_a_set_variable_command(journal, evil):
    _status, fake = run_session(make_scripts(journal), agi_env(),
                                {**HEADERS, OUT_HEADER: evil, REF_HEADER: evil})
    for command in fake.commands:
        if command.startswith("SET VARIABLE"):
            assert evil not in command, command


def test_unknown_script_is_told_so_and_not_journalled(journal):
    status, fake = run_session(make_scripts(journal), agi_env(script="other"), HEADERS)
    assert status == "unknown-script" and fake.sets == [("C2D_STATUS", "unknown-script")]
    assert journal.list() == ([], 0)


def test_journal_down_is_internal_error_and_nothing_to_dial_with(journal):
    class BrokenJournal:
        def record(self, *_a, **_kw):
            raise RuntimeError("database is locked")

    scripts = make_scripts(journal)
    scripts.journal = BrokenJournal()
    status, fake = run_session(scripts, agi_env(), HEADERS)
    assert status == "internal-error" and fake.sets == [("C2D_STATUS", "internal-error")]


def test_asterisk_gone_before_the_call_id_is_set_journals_the_call_failed(journal):
    with pytest.raises(AgiClosed):
        run_session(make_scripts(journal), agi_env(), HEADERS, drop_on_set=True)
    [call], _ = journal.list()
    assert (call["state"], call["reason"]) == ("ended", "failed")


def test_a_hangup_line_from_asterisk_does_not_break_the_session(journal):
    status, _fake = run_session(make_scripts(journal), agi_env(), HEADERS, hangup_after=2)
    assert status == "OK"


# --------------------------------------------------------------------------
# the click2dial-hangup script
# --------------------------------------------------------------------------


def accept(journal, scripts=None):
    _status, fake = run_session(scripts or make_scripts(journal), agi_env(), HEADERS)
    return dict(fake.sets)["C2D_CALL_ID"]


def hang_up(scripts, call_id, dialstatus, cause="16", answered_ms=""):
    return run_session(scripts, agi_env(script="click2dial-hangup", exten="s"),
                       {"C2D_CALL_ID": call_id, "DIALSTATUS": dialstatus, "HANGUPCAUSE": cause,
                        "ANSWEREDTIME_MS": answered_ms,
                        "ANSWEREDTIME": str(int(answered_ms) // 1000) if answered_ms else ""})


def test_hangup_script_ends_an_answered_call_completed_with_its_talk_time(journal):
    scripts = make_scripts(journal)
    call_id = accept(journal, scripts)
    _status, fake = hang_up(scripts, call_id, "ANSWER", answered_ms="12345")
    assert fake.sets == []
    call = journal.get(call_id)
    assert (call["state"], call["reason"], call["duration_s"]) == ("ended", "completed", 12.345)
    assert [e["state"] for e in journal.events(call_id)] == ["dialing_callee", "ended"]


@pytest.mark.parametrize("dialstatus,reason", [("BUSY", "callee_busy"), ("CANCEL", "cancelled"),
                                               ("NOANSWER", "callee_no_answer")])
def test_hangup_script_ends_an_unanswered_call_with_the_dial_reason(journal, dialstatus, reason):
    scripts = make_scripts(journal)
    call_id = accept(journal, scripts)
    hang_up(scripts, call_id, dialstatus)
    call = journal.get(call_id)
    assert call["reason"] == reason and call["answered_at"] is None and call["duration_s"] == 0


def test_hangup_script_leaves_refused_unknown_and_other_calls_alone(journal):
    scripts = make_scripts(journal)
    _status, fake = run_session(scripts, agi_env(exten="12345"), HEADERS)
    refused = dict(fake.sets)["C2D_CALL_ID"]
    rest = Call(id="f" * 32, origin=Origin.REST, agent="1001", callee="0215550100",
                outbound_id="", clid="0115550000", call_ref="", state=State.DIALING_AGENT)
    journal.record(rest, "placed")
    for call_id in (refused, rest.id, "0" * 32, "not-an-id", ""):
        hang_up(scripts, call_id, "ANSWER", answered_ms="1000")
    assert journal.get(refused)["reason"] == "rejected"
    assert journal.get(rest.id)["state"] == "dialing_agent"
    assert len(journal.events(refused)) == 1


def test_hangup_script_run_twice_ends_the_call_once(journal):
    scripts = make_scripts(journal)
    call_id = accept(journal, scripts)
    hang_up(scripts, call_id, "BUSY")
    hang_up(scripts, call_id, "ANSWER", answered_ms="5000")
    assert journal.get(call_id)["reason"] == "callee_busy"
    assert len(journal.events(call_id)) == 2


# --------------------------------------------------------------------------
# the transport: timeouts, limits, hostile values
# --------------------------------------------------------------------------


def test_reader_skips_hangup_lines_and_strips_cr():
    a, b = socket.socketpair()
    b.sendall(b"HANGUP\nagi_channel: PJSIP/3001-1\r\n\n")
    reader = LineReader(a, 1, 5)
    assert reader.readline() == "agi_channel: PJSIP/3001-1\n" and reader.hung_up
    assert reader.readline() == "\n"


def test_reader_times_out_on_a_silent_peer():
    a, b = socket.socketpair()
    # The peer answers only after 3 s, within the session (5 s) but long after
    # the read's own timeout (0.3 s): the reader gives up before the answer,
    # which is still unread in the socket afterwards.
    late = threading.Timer(3.0, b.sendall, args=(b"200 result=1\n",))
    late.start()
    try:
        with pytest.raises(AgiClosed, match="in time"):
            LineReader(a, 0.3, 5).readline()
        assert late.is_alive(), "the reader waited for the late answer"
    finally:
        late.join()
    a.settimeout(5)
    assert a.recv(64) == b"200 result=1\n"


def test_reader_session_deadline_stops_a_slow_drip():
    a, b = socket.socketpair()
    reader = LineReader(a, 0.5, 0.8)

    dripped: list[int] = []

    def drip():
        for i in range(40):
            try:
                b.sendall(b"x")
            except OSError:
                return
            dripped.append(i)
            time.sleep(0.1)

    peer = threading.Thread(target=drip, daemon=True)
    peer.start()
    # Each byte comes within the read timeout; the session's deadline ends it,
    # while the peer is still dripping (its 40 bytes take 4 s).
    with pytest.raises(AgiClosed):
        reader.readline()
    assert peer.is_alive() and len(dripped) < 40, dripped


def test_reader_refuses_endless_lines_and_eof():
    a, b = socket.socketpair()
    b.sendall(b"x" * (MAX_LINE + 10))
    with pytest.raises(AgiClosed, match="longer"):
        LineReader(a, 1, 5).readline()
    c, d = socket.socketpair()
    d.close()
    with pytest.raises(AgiClosed, match="closed"):
        LineReader(c, 1, 5).readline()


@pytest.mark.parametrize("name,value", [("C2D_STATUS", 'OK" "x'), ("C2D_STATUS", "a b"),
                                        ("C2D_STATUS", "x\n"), ("C2D_STATUS", "\\"),
                                        ("C2D STATUS", "OK"), ("CDR(call ref)", "x")])
def test_channel_set_refuses_what_could_break_the_command_line(name, value):
    a, b = socket.socketpair()
    b.sendall("".join(f"{k}: {v}\n" for k, v in agi_env().items()).encode() + b"\n")
    agi = AgiChannel.on_socket(a, 1, 5)
    with pytest.raises(ValueError):
        agi.set(name, value)


def test_server_refuses_sessions_beyond_max_connections(journal):
    """The cap counts sessions that passed authentication (no secret here:
    the environment does): one that is waiting for Asterisk's answer holds
    the only place, and the next is closed instead of being served."""
    server = AgiServer(("127.0.0.1", 0), make_scripts(journal), max_connections=1,
                       read_timeout_s=3)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    address = server.server_address
    env = ("".join(f"{k}: {v}\n" for k, v in agi_env().items()) + "\n").encode()
    try:
        holder = socket.create_connection(address)
        holder.settimeout(3)
        holder.sendall(env)
        assert holder.recv(200).startswith(b"GET FULL VARIABLE")   # in session, never answers
        extra = socket.create_connection(address)
        extra.settimeout(2)
        extra.sendall(env)
        assert extra.recv(200) == b""                # closed: no place for it
        holder.close()
        time.sleep(0.2)
        served = socket.create_connection(address)
        served.settimeout(3)
        served.sendall(("".join(f"{k}: {v}\n" for k, v in agi_env(script="nope").items())
                        + "\n").encode())
        assert served.recv(200).startswith(b'SET VARIABLE "C2D_STATUS" "unknown-script"')
        for s in (extra, served):
            s.close()
    finally:
        server.shutdown()
        server.server_close()


def test_dial_limits_come_from_the_config(journal):
    cfg = loads_config("[dial]\ncallee_ring_timeout_s = 20\nmax_call_duration_s = 600\n", env={})
    picker = ClidPicker(cfg.clid, ClidStore(journal.engine), rng=random.Random(7))
    scripts = AgiScripts(journal, picker, Policy(cfg.clid, cfg.policy), dial=cfg.dial)
    status, fake = run_session(scripts, agi_env(), HEADERS)
    sets = dict(fake.sets)
    assert status == "OK" and sets["C2D_RING_TIMEOUT"] == "20" and sets["C2D_MAX_DURATION_S"] == "600"


# --------------------------------------------------------------------------
# a cancel through the API (the service notes the outcome, the handler ends it)
# --------------------------------------------------------------------------


def test_a_noted_cancel_ends_an_answered_call_completed_by_the_api_with_its_talk_time(journal):
    """SPEC §2: a DELETE after the callee answered is `completed`, ended by `api`."""
    scripts = make_scripts(journal)
    call_id = accept(journal, scripts)
    assert journal.mark_outcome(call_id, "cancelled", "cancel requested through the API", by="api")
    assert journal.get(call_id)["reason"] is None          # not shown before the end
    assert journal.get(call_id)["ended_by"] is None
    hang_up(scripts, call_id, "ANSWER", answered_ms="4000")
    call = journal.get(call_id)
    assert (call["state"], call["reason"], call["ended_by"], call["duration_s"]) == \
        ("ended", "completed", "api", 4.0)


def test_a_noted_cancel_of_a_ringing_call_is_cancelled_by_the_api(journal):
    scripts = make_scripts(journal)
    call_id = accept(journal, scripts)
    journal.mark_outcome(call_id, "cancelled", "cancel requested through the API", by="api")
    hang_up(scripts, call_id, "CANCEL", cause="16")
    call = journal.get(call_id)
    assert (call["reason"], call["ended_by"], call["answered_at"]) == ("cancelled", "api", None)


@pytest.mark.parametrize("dialstatus, cause, source, ended_by", [
    ("ANSWER", "16", "PJSIP/1001-00000001", "agent"),
    ("ANSWER", "16", "PJSIP/trunk-00000002", "callee"),
    ("ANSWER", "16", "", "timeout"),                 # Dial's S() limit: nobody hung up
    ("BUSY", "17", "", "callee"),
    ("CONGESTION", "34", "", "callee"),
    ("CHANUNAVAIL", "20", "", "callee"),
    ("NOANSWER", "19", "", "timeout"),
    ("CANCEL", "16", "PJSIP/1001-00000001", "agent"),
    ("", "16", "", "agent"),
    ("", "0", "", "system"),
    ("INVALIDARGS", "0", "", "system"),
])
def test_who_ended_an_agi_call(dialstatus, cause, source, ended_by):
    from platforma_c2d.calls.dialstatus import ended_by_for_dial

    assert ended_by_for_dial(dialstatus, cause, source, "PJSIP/1001-00000001").value == ended_by


def test_dials_own_outcome_beats_a_cancel_that_came_after_it(journal):
    scripts = make_scripts(journal)
    call_id = accept(journal, scripts)
    journal.mark_outcome(call_id, "cancelled", "cancel requested through the API")
    hang_up(scripts, call_id, "BUSY", cause="17")
    assert (journal.get(call_id)["reason"], journal.get(call_id)["ended_by"]) == ("callee_busy", "callee")


def test_a_cancel_taken_back_leaves_the_dial_outcome(journal):
    """The hang-up through ARI failed: the call goes on and ends as Dial() says."""
    scripts = make_scripts(journal)
    call_id = accept(journal, scripts)
    journal.mark_outcome(call_id, "cancelled", "cancel requested through the API")
    journal.mark_outcome(call_id, None, "cancel failed")
    hang_up(scripts, call_id, "ANSWER", answered_ms="60000")
    assert journal.get(call_id)["reason"] == "completed"


def test_no_outcome_is_noted_on_an_ended_call(journal):
    scripts = make_scripts(journal)
    call_id = accept(journal, scripts)
    hang_up(scripts, call_id, "ANSWER", answered_ms="1000")
    assert not journal.mark_outcome(call_id, "cancelled", "late")
    assert journal.get(call_id)["reason"] == "completed"
