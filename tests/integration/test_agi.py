"""Dialplan-only calls through the FastAGI server (SPEC §5, §6, §9).

A SIPp UAC on 127.0.0.1:5091 is the phone of endpoint 3001, whose context is
``c2d-agi`` (asterisk_conf/extensions.conf): the dialplan runs
``AGI(agi://127.0.0.1:4573/click2dial)``, checks ``C2D_STATUS`` and dials the
trunk (a SIPp UAS on 5070) itself. ``platforma-c2d agi`` runs as a real
process with its own journal.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from platforma_c2d.store.journal import Journal
from testbed.sipmessages import sip_user
from testbed.sipp import uac_scenario, uas_scenario
from testbed.service import AGI_SECRET
from tests.integration.test_rest_calls import assert_trunk_never_saw

PHONE_PORT, TRUNK_PORT = 5091, 5070
AGENT = "3001"
OUT, REF = "X-Platforma-Outbound-ID", "X-Platforma-Call-Ref"
AGI_ADDRESS = ("127.0.0.1", 4573)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def start_agi(make_service, overrides=None):
    """``platforma-c2d agi`` as a process; returns (service, journal) once it listens."""
    return start_agi_named(make_service, None, overrides)


def start_agi_named(make_service, name, overrides=None):
    """Like :func:`start_agi`, in the work directory ``name`` (a ``serve``
    started with the same name shares its journal)."""
    svc = make_service(overrides, command="agi", name=name)
    deadline = time.monotonic() + 30   # as long as a serve may take to start (testbed)
    while "FastAGI listening" not in svc.log_path.read_text(errors="replace"):
        assert svc.proc.poll() is None, svc.tail_log()
        assert time.monotonic() < deadline, "agi server did not start: " + svc.tail_log()
        time.sleep(0.05)
    return svc, Journal(svc.store_url)


@pytest.fixture
def agi(make_service):
    """The AGI server with the bench defaults, and its journal."""
    return start_agi(make_service)


def dial(sipp, callee="0215550100", headers=(), calls=1, rate=None, extra_args=None, **kw):
    """Endpoint 3001 calls ``callee`` with ``headers``; returns the UAC peer."""
    scenario = uac_scenario(target=callee, from_user=AGENT, headers=list(headers), **kw)
    return sipp("phone", PHONE_PORT, scenario, uac_target="127.0.0.1:5060", calls=calls,
                rate=rate, extra_args=extra_args)


def final_responses(phone, count=1, timeout=20.0) -> list[int]:
    """The final response codes the phone got to its INVITEs (waits for ``count``)."""
    def is_final(m):
        return (m.direction == "received" and m.status and m.status >= 200
                and "INVITE" in (m.header("CSeq") or [""])[0])

    deadline = time.monotonic() + timeout
    while True:
        found = [m.status for m in phone.messages() if is_final(m)]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def wait_calls(journal, count=1, state="ended", timeout=15.0) -> list[dict]:
    """The journal's calls once ``count`` of them are in ``state``, newest first."""
    deadline = time.monotonic() + timeout
    while True:
        calls, _total = journal.list(limit=500)
        if sum(c["state"] == state for c in calls) >= count or time.monotonic() > deadline:
            return calls
        time.sleep(0.1)


def cdr_rows_for(asterisk, call_id, count=1):
    """CDR rows tagged with our call id (the column c2d_call_id)."""
    return asterisk.wait_cdr_rows(lambda r: r["c2d_call_id"] == call_id, count=count)


# --------------------------------------------------------------------------
# accepted calls
# --------------------------------------------------------------------------


def test_agi_call_reaches_the_trunk_with_the_clid_and_the_cdr_carries_the_call_ref(
        asterisk, agi, sipp):
    _svc, journal = agi
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=300))
    phone = dial(sipp, headers=[f"{OUT}: 0215550199", f"{REF}: ord-42.a_b~c:d"], talk_ms=1500)
    assert final_responses(phone) == [200]
    assert phone.wait(timeout=20) == 0

    invite = trunk.received("INVITE")[0]
    assert invite.first_line.startswith("INVITE sip:0215550100@")
    assert sip_user(invite.header("From")[0]) == "0215550199"
    assert [sip_user(v) for v in invite.header("P-Asserted-Identity")] == ["0215550199"]
    assert_trunk_never_saw(trunk, AGENT)
    assert not any(AGENT in m.text for m in trunk.received()), "the trunk saw the agent's extension"

    [call] = wait_calls(journal)
    assert call["origin"] == "agi" and call["state"] == "ended" and call["reason"] == "completed"
    assert call["ended_by"] == "agent", call       # the phone hung up (talk_ms)
    assert (call["agent"], call["callee"], call["outbound_id"], call["clid"], call["call_ref"]) == \
        (AGENT, "0215550100", "0215550199", "0215550199", "ord-42.a_b~c:d")
    assert call["answered_at"] and 0.8 <= call["duration_s"] <= 3.5, call

    # One CDR row per call: the Dial's (the hangup handler opens no second one).
    time.sleep(0.5)
    [row] = cdr_rows_for(asterisk, call["id"])
    assert (row["call_ref"], row["c2d_leg"], row["disposition"], row["dst"], row["src"]) == \
        ("ord-42.a_b~c:d", "agent", "ANSWERED", "0215550100", "0215550199"), row
    assert row["dstchannel"].startswith("PJSIP/trunk-") and row["lastapp"] == "Dial", row


def test_agi_call_ref_header_of_3000_characters_is_cut_to_230_on_the_cdr(asterisk, agi, sipp):
    """SPEC §1: length alone never rejects — also past AGI's 1,024-byte GET VARIABLE."""
    _svc, journal = agi
    sipp("trunk", TRUNK_PORT, uas_scenario())
    ref = ("A1.-_~:" * 500)[:3000]
    phone = dial(sipp, headers=[f"{OUT}: 0215550199", f"{REF}: {ref}"], talk_ms=300)
    assert final_responses(phone) == [200]
    [call] = wait_calls(journal)
    assert call["reason"] == "completed" and call["call_ref"] == ref[:230]
    time.sleep(0.5)
    [row] = cdr_rows_for(asterisk, call["id"])
    assert row["call_ref"] == ref[:230], row


def test_agi_call_without_headers_presents_the_default_clid_and_no_call_ref(asterisk, agi, sipp):
    _svc, journal = agi
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = dial(sipp, talk_ms=300)
    assert final_responses(phone) == [200]
    phone.wait(timeout=20)
    invite = trunk.received("INVITE")[0]
    assert sip_user(invite.header("From")[0]) == "0115550000"
    assert [sip_user(v) for v in invite.header("P-Asserted-Identity")] == ["0115550000"]
    [call] = wait_calls(journal)
    assert (call["outbound_id"], call["clid"], call["call_ref"]) == ("", "0115550000", "")
    assert all(r["call_ref"] == "" for r in cdr_rows_for(asterisk, call["id"]))


def test_agi_empty_headers_count_as_not_given(asterisk, agi, sipp):
    _svc, journal = agi
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = dial(sipp, headers=[f"{OUT}:", f"{REF}:"], talk_ms=300)
    assert final_responses(phone) == [200]
    phone.wait(timeout=20)
    assert sip_user(trunk.received("INVITE")[0].header("From")[0]) == "0115550000"
    [call] = wait_calls(journal)
    assert call["reason"] == "completed" and call["clid"] == "0115550000" and call["call_ref"] == ""


def test_agi_random_outbound_id_draws_from_the_pool(asterisk, agi, sipp):
    _svc, journal = agi
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = dial(sipp, headers=[f"{OUT}: random", f"{REF}: rnd"], talk_ms=300)
    assert final_responses(phone) == [200]
    phone.wait(timeout=20)
    clid = sip_user(trunk.received("INVITE")[0].header("From")[0])
    assert clid in ("0115550001", "0115550002")
    [call] = wait_calls(journal)
    assert call["outbound_id"] == "random" and call["clid"] == clid


# --------------------------------------------------------------------------
# how an accepted call ended (hangup handler -> click2dial-hangup)
# --------------------------------------------------------------------------


def test_agi_callee_busy_is_journalled_callee_busy(asterisk, agi, sipp):
    _svc, journal = agi
    sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200, reject_code=486))
    phone = dial(sipp, headers=[f"{REF}: busy-1"])
    assert final_responses(phone) == [486]
    [call] = wait_calls(journal)
    assert call["reason"] == "callee_busy" and call["answered_at"] is None and call["ended_by"] == "callee"
    assert call["duration_s"] == 0
    time.sleep(0.5)
    [row] = cdr_rows_for(asterisk, call["id"])
    assert (row["call_ref"], row["disposition"]) == ("busy-1", "BUSY"), row


def test_agi_agent_hangs_up_while_the_callee_rings_is_cancelled(asterisk, agi, sipp):
    _svc, journal = agi
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(answer=False))
    phone = dial(sipp, headers=[f"{REF}: gave-up"], cancel_after_ms=1500)
    assert final_responses(phone) == [487]
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "CANCEL")
    [call] = wait_calls(journal)
    assert (call["reason"], call["ended_by"]) == ("cancelled", "agent")


def test_agi_unreachable_callee_is_callee_unavailable(asterisk, agi, sipp):
    _svc, journal = agi
    sipp("trunk", TRUNK_PORT, uas_scenario(reject_code=503))
    phone = dial(sipp)
    assert final_responses(phone)[0] >= 400
    [call] = wait_calls(journal)
    assert call["reason"] == "callee_unavailable"


# --------------------------------------------------------------------------
# refused calls: C2D_STATUS -> the dialplan's rejection
# --------------------------------------------------------------------------


@pytest.mark.parametrize("callee,headers,code,status,fields,cdr_ref", [
    ("0215550100", [f"{OUT}: +27215550199", f"{REF}: rej-1"], 403, "invalid-request",
     ["outbound_id"], "rej-1"),
    ("0215550100", [f"{OUT}: Random"], 403, "invalid-request", ["outbound_id"], ""),
    ("0215550100", [f"{REF}: bad ref"], 403, "invalid-request", ["call_ref"], ""),
    ("0215550100", [f"{REF}: ref;x=1"], 403, "invalid-request", ["call_ref"], ""),
    # Longer than what AGI's GET VARIABLE can read (1,024 bytes): checked whole all the same.
    ("0215550100", [f"{REF}: {'a' * 1090};x=1"], 403, "invalid-request", ["call_ref"], ""),
    ("0215550100", [f"{OUT}: 0215550199{'9' * 1100}", f"{REF}: rej-3"], 403, "invalid-request",
     ["outbound_id"], "rej-3"),
    ("0215550100", [f"{REF}: dup-1", f"{REF}: dup-2"], 403, "invalid-request", ["call_ref"], ""),
])
def test_agi_invalid_input_is_rejected_by_the_dialplan_and_nothing_reaches_the_trunk(
        asterisk, agi, sipp, callee, headers, code, status, fields, cdr_ref):
    _svc, journal = agi
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = dial(sipp, callee=callee, headers=headers)
    assert final_responses(phone) == [code]
    [call] = wait_calls(journal)
    assert call["origin"] == "agi" and call["reason"] == "rejected"
    detail = journal.events(call["id"])[-1]["detail"]
    assert detail.startswith(f"refused ({status}; fields {','.join(fields)}): "), detail
    # The attempt's one CDR row is joined to the journal; a valid call_ref is on it.
    [row] = cdr_rows_for(asterisk, call["id"])
    assert row["call_ref"] == cdr_ref and row["dstchannel"] == "", row
    time.sleep(0.3)
    assert trunk.received() == []


def test_messages_log_says_why_a_call_was_refused_and_never_holds_the_shared_secret(asterisk, agi, sipp):
    """SPEC §9, no secret in logs: Asterisk's messages.log (the shipped logger.conf) has the
    dialplan's reasons, not the verbose lines that write every global variable's value and
    every application's arguments (AGI() carries the FastAGI secret)."""
    _svc, journal = agi
    sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = dial(sipp, headers=[f"{OUT}: 99"], talk_ms=300)
    assert final_responses(phone) == [403]
    [call] = wait_calls(journal)
    assert call["reason"] == "rejected", call
    text = (asterisk.root / asterisk.logdir / "messages.log").read_text(errors="replace")
    assert "Click2Dial rejected PJSIP/3001-" in text and "invalid-request (outbound_id)" in text
    assert AGI_SECRET not in text


# --------------------------------------------------------------------------
# the shared secret: held in Asterisk's AstDB, asked for on the connection
# --------------------------------------------------------------------------


@pytest.mark.admin_configs
@pytest.mark.parametrize("held", [None, "wrong-agi-secret-0000"], ids=["missing", "wrong"])
def test_agi_call_is_refused_when_asterisks_astdb_lacks_the_secret(asterisk, agi, sipp, held):
    """AstDB c2d/agi_secret missing or not [agi] secret: the session is untrusted
    (403), nothing is journalled and the trunk sees nothing."""
    svc, journal = agi
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    asterisk.put_agi_secret(held)
    try:
        phone = dial(sipp, headers=[f"{OUT}: 0215550199", f"{REF}: no-secret"])
        assert final_responses(phone) == [403]
        phone.wait(timeout=10)
    finally:
        asterisk.put_agi_secret(AGI_SECRET)
    time.sleep(0.3)
    assert trunk.received() == [] and journal.list(limit=5)[0] == []
    log = svc.log_path.read_text(errors="replace")
    assert "refused: the peer" in log and "c2d/agi_secret" in log, svc.tail_log()
    assert AGI_SECRET not in log and "wrong-agi-secret-0000" not in log
    # The same Asterisk with the secret back: calls pass again.
    assert final_responses(dial(sipp, talk_ms=200)) == [200]


def agi_secret_command(asterisk, svc, action: str) -> subprocess.CompletedProcess:
    """``platforma-c2d agi-secret ACTION`` with the service's config and the bench
    Asterisk's control socket (``/var/run/asterisk/asterisk.ctl`` in its root,
    where ``var/run`` links to ``/run``)."""
    return subprocess.run([sys.executable, "-m", "platforma_c2d.cli", "agi-secret", action,
                           "--config", str(svc.config_path),
                           "--socket", str(asterisk.root / "run" / asterisk.dirs["astrundir"].removeprefix("var/run/")
                                           / "asterisk.ctl")],
                          capture_output=True, text=True, timeout=60)


def test_agi_secret_set_stores_the_configs_secret_in_astdb_and_nowhere_else(asterisk, agi, sipp):
    """An Asterisk without the secret refuses every AGI call (untrusted); after
    ``platforma-c2d agi-secret set`` AstDB holds [agi] secret, ``check`` says so,
    calls pass, and the secret is in no Asterisk log nor the command's output."""
    svc, journal = agi
    sipp("trunk", TRUNK_PORT, uas_scenario())
    asterisk.put_agi_secret(None)
    try:
        res = agi_secret_command(asterisk, svc, "check")
        assert res.returncode == 1 and res.stdout.startswith("FAIL AstDB c2d/agi_secret"), res
        assert final_responses(dial(sipp, talk_ms=200)) == [403]
        res = agi_secret_command(asterisk, svc, "set")
        assert (res.returncode, res.stdout) == (0, "ok   AstDB c2d/agi_secret equals [agi] secret (stored)\n"), res
        assert f"Value: {AGI_SECRET}" in asterisk.cli("database get c2d agi_secret").splitlines()
        assert agi_secret_command(asterisk, svc, "check").returncode == 0
        phone = dial(sipp, headers=[f"{REF}: after-set"], talk_ms=200)
        assert final_responses(phone) == [200]
        phone.wait(timeout=20)
    finally:
        asterisk.put_agi_secret(AGI_SECRET)
    assert [c["call_ref"] for c in wait_calls(journal)] == ["after-set"]
    assert AGI_SECRET not in res.stdout + res.stderr
    for f in (asterisk.root / asterisk.logdir).rglob("*"):
        if f.is_file():
            assert AGI_SECRET not in f.read_text(errors="replace"), f


@pytest.mark.admin_configs
def test_a_fake_fastagi_client_that_cannot_answer_the_challenge_is_refused(asterisk, agi):
    """A local process that connects with a valid-looking environment is asked for
    AstDB c2d/agi_secret; whatever it answers that is not the secret, or if it
    stays silent, it gets nothing and nothing is journalled."""
    svc, journal = agi
    env = {"agi_network": "yes", "agi_network_script": "click2dial",
           "agi_request": "agi://127.0.0.1:4573/click2dial", "agi_channel": "PJSIP/3001-00000001",
           "agi_language": "en", "agi_type": "PJSIP", "agi_uniqueid": "1796624930.7",
           "agi_version": "22.1.0", "agi_callerid": "3001", "agi_calleridname": "unknown",
           "agi_callingpres": "0", "agi_callingani2": "0", "agi_callington": "0",
           "agi_callingtns": "0", "agi_dnid": "0215550100", "agi_rdnis": "unknown",
           "agi_context": "c2d-agi-call", "agi_extension": "0215550100", "agi_priority": "3",
           "agi_enhanced": "0.0", "agi_accountcode": "", "agi_threadid": "1"}
    hello = ("".join(f"{k}: {v}\n" for k, v in env.items()) + "\n").encode()
    for answer in (b"200 result=0\n", b"200 result=1 (guess)\n", b"510 Invalid or unknown command\n"):
        with socket.create_connection(AGI_ADDRESS, timeout=5) as conn:
            conn.sendall(hello)
            assert conn.recv(200) == b"DATABASE GET c2d agi_secret\n"
            conn.sendall(answer)
            rest = b""
            while chunk := conn.recv(200):
                rest += chunk
            # At most the refusal for the dialplan; never a question about the call.
            assert rest in (b"", b'SET VARIABLE "C2D_STATUS" "untrusted-session"\n'), rest
    time.sleep(0.3)
    assert journal.list(limit=5)[0] == []
    assert svc.log_path.read_text(errors="replace").count("refused") >= 2, svc.tail_log()


@pytest.mark.admin_configs
def test_the_secret_is_nowhere_in_asterisks_verbose_5_log_after_calls_and_a_reload(
        asterisk, agi, sipp):
    """An administrator's Asterisk that writes verbose 5 to a file (FreePBX's
    'full' log): after an accepted call, a refused one and a dialplan reload the
    file has every executed application with its arguments, and not the secret."""
    _svc, journal = agi
    logfile = asterisk.root / asterisk.logdir / "c2d-full-verbose5"
    logfile.unlink(missing_ok=True)
    asterisk.cli("logger add channel c2d-full-verbose5 notice,warning,error,verbose(5)")
    asterisk.cli("core set verbose 5")
    try:
        sipp("trunk", TRUNK_PORT, uas_scenario())
        phone = dial(sipp, headers=[f"{REF}: in-log"], talk_ms=300)
        assert final_responses(phone) == [200]
        phone.wait(timeout=20)
        phone = dial(sipp, headers=[f"{OUT}: 99"])
        assert final_responses(phone) == [403]
        phone.wait(timeout=20)
        wait_calls(journal, count=2)
        asterisk.cli("dialplan reload")
        time.sleep(1.0)
    finally:
        asterisk.cli("core set verbose 3")
        asterisk.cli("logger remove channel c2d-full-verbose5")
    text = logfile.read_text(errors="replace")
    # The file is the verbose log that would have carried an argument: the AGI() lines are in it.
    assert 'AGI("PJSIP/3001-' in text and "agi://127.0.0.1:4573/click2dial" in text, text[-2000:]
    assert "AGI Script agi://127.0.0.1:4573/click2dial completed" in text, text[-2000:]
    for f in (asterisk.root / asterisk.logdir).rglob("*"):
        if f.is_file():
            assert AGI_SECRET not in f.read_text(errors="replace"), f


@pytest.mark.parametrize("callee", ["12345", "021555010", "+27215550100", "02155501x0"])
def test_agi_number_outside_the_callee_formats_is_refused_404_before_the_agi(
        asterisk, agi, sipp, callee):
    """Only the callee formats (digits) reach the AGI: other digits go to the
    PBX's own dialplan (404 by default), anything else matches no extension
    and PJSIP refuses it before any dialplan runs (SPEC §4: 484 or 404)."""
    _svc, journal = agi
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = dial(sipp, callee=callee, headers=[f"{OUT}: 0215550199"])
    # 484 when more digits could still match an extension (PJSIP's overlap rule)
    assert final_responses(phone)[0] in (404, 484)
    time.sleep(0.3)
    assert journal.list(limit=5)[0] == [] and trunk.received() == []


def test_agi_clid_outside_the_allowed_list_is_rejected_403(asterisk, make_service, sipp):
    _svc, journal = start_agi(make_service, {"clid": {
        "default": "0115550000", "pool": ["0115550001"],
        "allowed": ["0115550000", "0115550001"]}})
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = dial(sipp, headers=[f"{OUT}: 0215550199"])
    assert final_responses(phone) == [403]
    [call] = wait_calls(journal)
    assert call["reason"] == "rejected"
    detail = journal.events(call["id"])[-1]["detail"]
    assert detail.startswith("refused (clid-not-allowed; fields outbound_id)"), detail
    time.sleep(0.3)
    assert trunk.received() == []


def test_agi_denied_destination_is_rejected_403(asterisk, make_service, sipp):
    _svc, journal = start_agi(make_service, {"policy": {"callee_deny_prefixes": ["00"]}})
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = dial(sipp, callee="0044201234567")
    assert final_responses(phone) == [403]
    [call] = wait_calls(journal)
    detail = journal.events(call["id"])[-1]["detail"]
    assert detail.startswith("refused (destination-not-allowed; fields callee)"), detail
    time.sleep(0.3)
    assert trunk.received() == []


def test_agi_call_shares_the_journal_with_the_rest_service(asterisk, make_service, sipp):
    """With one store for ``agi`` and ``serve``, the REST API lists AGI calls
    (``origin: agi``), and the service connecting to ARI while an AGI call is
    up leaves that call to the dialplan: it still ends ``completed``."""
    _agi, journal = start_agi_named(make_service, "shared")
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    # The call lasts far longer than the API service takes to start on a loaded machine.
    phone = dial(sipp, headers=[f"{REF}: shared-1"], talk_ms=15000)
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "ACK")
    [call] = wait_calls(journal, state="dialing_callee")
    api = make_service(name="shared")               # reconciles the journal on connect
    assert api.get_call(call["id"])["state"] == "dialing_callee"
    assert phone.wait(timeout=40) == 0
    ended = wait_calls(journal)[0]
    assert ended["reason"] == "completed", ended
    listed = api.http.get("/click2dial/calls").json()["calls"]
    assert [(c["id"], c["origin"], c["reason"]) for c in listed] == \
        [(call["id"], "agi", "completed")]


@pytest.mark.parametrize("phase", ["callee_ringing", "connected"])
def test_agi_call_cancelled_through_the_api_is_hung_up_and_journalled_by_the_api(
        asterisk, make_service, sipp, phase):
    """SPEC §2 DELETE hangs up every leg, whatever the origin: the service
    hangs the AGI call's channel up through ARI; the hangup handler ends it
    ``cancelled`` (with the talk time when it was connected)."""
    # A ring timeout far longer than the API service takes to start, even on a loaded machine.
    _agi, journal = start_agi_named(make_service, "cancel", {"dial": {"callee_ring_timeout_s": 60}})
    ringing = phase == "callee_ringing"
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(answer=not ringing, talk_ms=30000))
    phone = dial(sipp, headers=[f"{REF}: cancel-{phase}"], talk_ms=30000)
    if ringing:
        assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "INVITE")
    else:
        assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "ACK")
    [call] = wait_calls(journal, state="dialing_callee")
    api = make_service(name="cancel")
    time.sleep(1.0)
    r = api.http.delete(f"/click2dial/calls/{call['id']}")
    assert r.status_code == 200, r.text
    ended = r.json()
    # SPEC §2: cancelled before the callee answered, completed after; ended by the API.
    assert ended["state"] == "ended" and ended["ended_by"] == "api", ended
    assert ended["reason"] == ("cancelled" if ringing else "completed"), ended
    if ringing:
        assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "CANCEL")
        assert ended["answered_at"] is None
    else:
        assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "BYE")
        assert ended["answered_at"] is not None and ended["duration_s"] >= 0.5
    assert phone.wait_for(lambda m: m.direction == "received" and (
        m.method == "BYE" or (m.status or 0) >= 400))
    assert asterisk.wait_idle() == ([], [])
    # Once ended, a DELETE changes nothing.
    again = api.http.delete(f"/click2dial/calls/{call['id']}")
    assert again.status_code == 200 and again.json() == api.get_call(call["id"])


def test_agi_call_is_cut_at_the_configured_maximum_duration(asterisk, make_service, sipp):
    """SPEC §3.6 for dialplan calls too: [dial] max_call_duration_s reaches
    Dial() as S(); the trunk gets the BYE and the call ends completed."""
    _agi, journal = start_agi(make_service, {"dial": {"max_call_duration_s": 3}})
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(talk_ms=30000))
    dial(sipp, headers=[f"{REF}: max-1"], talk_ms=30000)
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "BYE", timeout=15)
    # Cut 3 s after the answer, as the trunk saw it: its ACK, then Asterisk's BYE.
    ack, bye = trunk.received("ACK")[0], trunk.received("BYE")[0]   # first copies
    assert 2.5 <= bye.time - ack.time <= 8, bye.time - ack.time
    [call] = wait_calls(journal)
    assert call["reason"] == "completed" and 2.5 <= call["duration_s"] <= 4.5, call
    assert call["ended_by"] == "timeout", call
    assert asterisk.wait_idle() == ([], [])


def test_agi_call_longer_than_every_socket_timeout_of_the_server_is_not_cut(asterisk, make_service, sipp):
    """C37: a read timeout of 1 s (a whole session: 3 s at most) and a call that talks
    6 s: the AGI session checks the call and ends before the Dial, so no timeout of
    the server's can cut the call; it ends when the phone hangs up, completed."""
    _agi, journal = start_agi(make_service, {"agi": {"read_timeout_s": 1.0}})
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = dial(sipp, headers=[f"{REF}: long-agi"], talk_ms=6000)
    assert final_responses(phone) == [200]
    assert phone.wait(timeout=20) == 0
    [call] = wait_calls(journal)
    assert call["reason"] == "completed" and call["duration_s"] >= 5.5, call
    assert call["call_ref"] == "long-agi" and call["ended_by"] == "agent", call
    # The trunk's BYE is the phone's, passed on; nothing hung up earlier.
    # (SIPp logs a message it sent after sending it: the trunk may log the BYE
    # passed on a few ms before the phone logs its own; a server's timeout
    # would have cut the call seconds earlier.)
    [phone_bye] = [m for m in phone.sent() if m.method == "BYE"]
    [trunk_bye] = trunk.received("BYE")
    assert trunk_bye.time >= phone_bye.time - 0.2 and not phone.received("BYE")


# --------------------------------------------------------------------------
# the server down, full or stalled
# --------------------------------------------------------------------------


def test_agi_server_down_rejects_with_503_at_once(asterisk, sipp):
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = dial(sipp, headers=[f"{OUT}: 0215550199"])
    assert final_responses(phone, timeout=5) == [503]      # refused, not left ringing
    assert phone.wait(timeout=5) == 0
    assert trunk.received() == []


def test_agi_server_stopped_then_started_again_serves_calls(asterisk, make_service, sipp):
    svc, _journal = start_agi(make_service)
    svc.stop()
    assert svc.proc.returncode == 0, svc.tail_log()
    sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = dial(sipp)
    assert final_responses(phone, timeout=5) == [503]
    phone.wait(timeout=10)
    _svc2, journal = start_agi(make_service)
    assert final_responses(dial(sipp, talk_ms=300)) == [200]
    assert wait_calls(journal)[0]["reason"] == "completed"


def test_agi_idle_connections_neither_stall_calls_nor_take_the_places_of_asterisks_sessions(
        asterisk, make_service, sipp):
    """Connections that never show the secret (a local process that cannot
    answer the challenge, and stays silent) are counted apart from
    ``max_connections``: ten of them, past both caps, leave Asterisk's calls
    served; each is dropped ``auth_timeout_s`` after it connected."""
    svc, journal = start_agi(make_service, {"agi": {"max_connections": 2, "max_unauthenticated": 3,
                                                    "auth_timeout_s": 5.0, "read_timeout_s": 6.0}})
    sipp("trunk", TRUNK_PORT, uas_scenario())
    idle = [socket.create_connection(AGI_ADDRESS)]       # says nothing
    try:
        phone = dial(sipp, headers=[f"{REF}: beside-idle"], talk_ms=200)
        assert final_responses(phone) == [200]
        # Served while the idle connection is still held open by the server:
        # the call never waited for it to be dropped.
        idle[0].setblocking(False)
        with pytest.raises(BlockingIOError):
            idle[0].recv(1)
        idle[0].setblocking(True)
        phone.wait(timeout=10)

        # Past max_connections and max_unauthenticated at once: the call is still served.
        idle += [socket.create_connection(AGI_ADDRESS) for _ in range(9)]
        phone = dial(sipp, headers=[f"{REF}: beside-ten-idle"], talk_ms=200)
        assert final_responses(phone) == [200]
        phone.wait(timeout=10)
        assert "without it already ([agi] max_unauthenticated)" in svc.log_path.read_text(errors="replace")

        # The server drops a silent connection once its time to show the secret is over.
        idle[-1].settimeout(10)
        assert idle[-1].recv(1) == b""
    finally:
        for s in idle:
            s.close()
    assert final_responses(dial(sipp, headers=[f"{REF}: after"], talk_ms=200)) == [200]
    calls = wait_calls(journal, count=3)
    assert sorted(c["call_ref"] for c in calls) == ["after", "beside-idle", "beside-ten-idle"]


# --------------------------------------------------------------------------
# several calls at once
# --------------------------------------------------------------------------


def test_twenty_agi_calls_at_once_are_each_answered_correctly(asterisk, agi, sipp, bench_root):
    """20 calls placed 10 ms apart, each with its own callee, CLID and call_ref:
    every one reaches the trunk with its own CLID, is journalled and tagged
    with its own call_ref (no answer crosses over to another session)."""
    _svc, journal = agi
    n = 20
    expected = {f"02155501{i:02d}": (f"02155502{i:02d}", f"load-{i}") for i in range(n)}
    inf = bench_root / "tmp/c2d-bench/agi-load.csv"
    inf.parent.mkdir(parents=True, exist_ok=True)
    inf.write_text("SEQUENTIAL\n" + "".join(f"{c};{o};{r};\n" for c, (o, r) in expected.items()))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=500))
    phone = dial(sipp, callee="[field0]", headers=[f"{OUT}: [field1]", f"{REF}: [field2]"],
                 calls=n, rate=100, talk_ms=1500,
                 extra_args=["-inf", "/tmp/c2d-bench/agi-load.csv"])
    assert phone.wait(timeout=60) == 0, "some calls failed"
    assert final_responses(phone, count=n) == [200] * n

    invites = trunk.received("INVITE")
    assert len(invites) == n
    for invite in invites:
        callee = invite.first_line.split()[1][4:].split("@")[0]
        clid, _ref = expected[callee]
        assert sip_user(invite.header("From")[0]) == clid, invite.text
        assert [sip_user(v) for v in invite.header("P-Asserted-Identity")] == [clid]

    calls = wait_calls(journal, count=n, timeout=20)
    assert len(calls) == n
    time.sleep(0.5)
    for call in calls:
        assert call["origin"] == "agi" and call["reason"] == "completed", call
        assert (call["clid"], call["call_ref"]) == expected[call["callee"]], call
        [row] = cdr_rows_for(asterisk, call["id"])
        assert (row["call_ref"], row["dst"], row["src"]) == \
            (call["call_ref"], call["callee"], call["clid"]), row
