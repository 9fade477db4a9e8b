"""The service ends AGI calls from their channel's ARI events (calls.agi_follower).

Against a real SQLite journal; the events are shaped as Asterisk 22 sends
them to an app subscribed to a channel outside Stasis (the integration test
tests/integration/test_agi_followed.py checks them against Asterisk).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from platforma_c2d.ari.records import parse
from platforma_c2d.calls.agi_follower import AgiFollower
from platforma_c2d.calls.model import Call, Leg, Origin, State, new_call_id
from platforma_c2d.calls.stasis import RECORDS
from platforma_c2d.store.journal import Journal

CHANNEL = "1765000000.42"


@pytest.fixture
def journal(tmp_path):
    j = Journal(f"sqlite:///{tmp_path / 'calls.sqlite3'}")
    yield j
    j.close()


def open_agi_call(journal, channel=CHANNEL) -> str:
    call = Call(id=new_call_id(), origin=Origin.AGI, agent="3001", callee="0215550100",
                outbound_id="", clid="0215550199", call_ref="r-1", state=State.DIALING_CALLEE)
    call.agent_leg = Leg("agent", channel, started=True, up=True)
    journal.record(call, "accepted")
    return call.id


def follow(journal, events):
    follower = AgiFollower(SimpleNamespace(journal=journal), ari=None)

    async def run():
        for event in events:
            ended = follower.on_event(parse(event, RECORDS))
            if ended is not None:
                await ended
    asyncio.run(run())


def dial(status, caller=CHANNEL):
    return {"type": "Dial", "dialstatus": status, "caller": {"id": caller},
            "peer": {"id": "1765000000.43", "name": "PJSIP/trunk-00000001"}}


def destroyed(cause=16, channel=CHANNEL):
    return {"type": "ChannelDestroyed", "cause": cause,
            "channel": {"id": channel, "name": "PJSIP/3001-00000001"}}


@pytest.mark.parametrize("status, reason, by", [
    ("BUSY", "callee_busy", "callee"), ("NOANSWER", "callee_no_answer", "timeout"),
    ("CHANUNAVAIL", "callee_unavailable", "callee"), ("CANCEL", "cancelled", "agent")])
def test_channel_destroyed_ends_the_call_with_the_dial_status(journal, status, reason, by):
    call_id = open_agi_call(journal)
    follow(journal, [dial(""), dial(status), destroyed()])
    row = journal.get(call_id)
    assert (row["state"], row["reason"], row["ended_by"]) == ("ended", reason, by)


def test_answered_call_hung_up_by_the_phone_is_completed_by_the_agent(journal):
    call_id = open_agi_call(journal)
    follow(journal, [dial("ANSWER"),
                     {"type": "ChannelHangupRequest", "channel": {"id": CHANNEL}, "cause": 16},
                     destroyed()])
    row = journal.get(call_id)
    assert (row["state"], row["reason"], row["ended_by"]) == ("ended", "completed", "agent")
    assert row["answered_at"] is not None


def test_answered_call_ended_by_the_dialplan_after_the_callee_hung_up_is_the_callee_s(journal):
    call_id = open_agi_call(journal)
    follow(journal, [dial("ANSWER"),
                     {"type": "ChannelHangupRequest", "channel": {"id": CHANNEL}, "soft": True},
                     destroyed()])
    row = journal.get(call_id)
    assert (row["reason"], row["ended_by"]) == ("completed", "callee")


def test_a_call_ended_by_the_hangup_handler_first_is_left_as_it_is(journal):
    call_id = open_agi_call(journal)
    follow(journal, [dial("BUSY"), destroyed()])
    first = journal.get(call_id)
    follow(journal, [dial("ANSWER"), destroyed()])   # a second end never overwrites
    assert journal.get(call_id) == first
    assert [e["state"] for e in journal.events(call_id)].count("ended") == 1


def test_a_cancel_noted_through_the_api_is_the_reason(journal):
    call_id = open_agi_call(journal)
    journal.mark_outcome(call_id, "cancelled", "cancel requested through the API", by="api")
    follow(journal, [dial("CANCEL"), destroyed()])
    row = journal.get(call_id)
    assert (row["reason"], row["ended_by"]) == ("cancelled", "api")


def test_channels_of_no_agi_call_change_nothing(journal):
    call_id = open_agi_call(journal)
    follow(journal, [dial("BUSY", caller="other"), destroyed(channel="other")])
    assert journal.get(call_id)["state"] == "dialing_callee"


def test_reconcile_ends_calls_whose_channel_is_gone_failed(journal):
    call_id = open_agi_call(journal)
    follower = AgiFollower(SimpleNamespace(journal=journal), ari=None)
    asyncio.run(follower.reconcile(journal.unfinished(), channels={}))
    row = journal.get(call_id)
    assert (row["state"], row["reason"]) == ("ended", "failed")
