"""Toll fraud through the FastAGI context, reproduced on the real Asterisk.

A phone registered in ``[c2d-agi]`` (endpoint 3001, a SIPp UAC) tries to
make the dialplan dial something the AGI server never checked: an encoded
newline that forges a second ``agi_extension`` line, a comma that splits
``Dial()``'s arguments and adds Dial options (a forged caller ID), a
trailing encoded space, a newline in the From user that forges the
channel's ``agi_uniqueid``. What the trunk peer (SIPp UAS) received is the
proof: no INVITE to the denied number, no caller ID outside ``[clid]
allowed``.
"""

from __future__ import annotations

import time

import pytest

from testbed.sipmessages import sip_user
from testbed.sipp import uac_scenario, uas_scenario
from tests.integration.test_agi import (AGENT, OUT, PHONE_PORT, REF, TRUNK_PORT, dial, final_responses,
                                        start_agi, wait_calls)

ALLOWED = ["0115550000", "0115550001", "0115550002"]
GUARDED = {"policy": {"callee_deny_prefixes": ["0900", "00"]},
           "clid": {"default": "0115550000", "pool": ["0115550001"], "allowed": ALLOWED}}
FORGED_CLID = "0999999999"


def assert_trunk_saw_nothing_forbidden(trunk):
    """No INVITE for a denied number and no caller ID outside [clid] allowed."""
    for invite in trunk.received("INVITE"):
        target = invite.first_line.split()[1]
        assert "0900" not in target, invite.text
        assert sip_user(invite.header("From")[0]) in ALLOWED, invite.text
        assert FORGED_CLID not in invite.text, invite.text


@pytest.mark.parametrize("callee", [
    # a second agi_extension line (the harmless number is what gets checked) and a
    # comma that ends Dial()'s dial string and adds the f() option (a forged CLID)
    f"0900123456%40trunk,,f({FORGED_CLID})%0Aagi_extension%3A%200215550100",
    # the same through the comma alone
    f"0215550100%40trunk,,f({FORGED_CLID})",
    # a trailing encoded space
    "0215550100%20",
    # an encoded newline with nothing after it
    "0215550100%0A",
], ids=["newline-second-extension", "comma-dial-options", "trailing-space", "trailing-newline"])
def test_a_dialled_number_carrying_dial_syntax_never_reaches_the_trunk(
        asterisk, make_service, sipp, callee):
    _svc, journal = start_agi(make_service, GUARDED)
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = dial(sipp, callee=callee, headers=[f"{REF}: fraud-1"], talk_ms=300)
    [code] = final_responses(phone)
    assert code in (403, 404, 484), code
    time.sleep(0.5)
    assert_trunk_saw_nothing_forbidden(trunk)
    assert trunk.received("INVITE") == []
    calls, _total = journal.list(limit=10)
    assert all(c["reason"] == "rejected" for c in calls), calls


def test_a_newline_in_the_from_user_cannot_forge_the_channel_identity(asterisk, make_service, sipp):
    """The From user ends up in agi_callerid, which Asterisk writes before
    agi_uniqueid: a forged ``agi_uniqueid`` must not name the call's channel
    in the journal (a DELETE of the attacker's call would hang up another)."""
    _svc, journal = start_agi(make_service, GUARDED)
    victim = "1700000000.4242"
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    scenario = uac_scenario(target="0215550100", from_user=f"{AGENT}%0Aagi_uniqueid%3A%20{victim}",
                            headers=[f"{OUT}: 0115550001"], talk_ms=300)
    phone = sipp("phone", PHONE_PORT, scenario, uac_target="127.0.0.1:5060", calls=1)
    final_responses(phone)
    time.sleep(0.5)
    calls, _total = journal.list(limit=10)
    for call in calls:
        row = journal.get_row(call["id"])
        assert row.get("agent_channel") != victim, row
    assert_trunk_saw_nothing_forbidden(trunk)
