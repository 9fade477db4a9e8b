"""Rebuilding journalled calls after a restart (calls.recovery)."""

from __future__ import annotations

import pytest

from platforma_c2d.calls.model import Reason, State
from platforma_c2d.calls.recovery import call_from_row, refusal_cause

ID = "b" * 32


def row(**kw) -> dict:
    base = {"id": ID, "origin": "rest", "agent": "1001", "callee": "0215550100",
            "outbound_id": "random", "clid": "0115550001", "call_ref": "r", "state": "dialing_agent",
            "reason": None, "created_at": "2026-01-01T10:00:00.000Z", "answered_at": None,
            "agent_channel": f"c2d-{ID}-agent", "callee_channel": None, "bridge_id": None,
            "token_name": ""}
    return {**base, **kw}


def test_a_ringing_agent_leg_is_live_but_not_started():
    chans = {f"c2d-{ID}-agent": {"state": "Ringing", "dialplan": {"app_name": "AppDial2"}}}
    call = call_from_row(row(), chans)
    leg = call.agent_leg
    assert (leg.started, leg.up, leg.gone) == (False, False, False)
    assert call.callee_leg is None and call.state is State.DIALING_AGENT


def test_a_vanished_leg_is_gone():
    call = call_from_row(row(state="connected", callee_channel=f"c2d-{ID}-callee",
                             answered_at="2026-01-01T10:00:05.000Z"), {})
    assert call.agent_leg.gone and call.callee_leg.gone
    assert call.answered_at.second == 5


def test_a_callee_leg_requested_just_before_a_crash_is_found_by_its_id():
    chans = {f"c2d-{ID}-agent": {"state": "Up"}, f"c2d-{ID}-callee": {"state": "Ringing"}}
    call = call_from_row(row(state="dialing_callee"), chans)
    assert call.callee_leg.channel_id == f"c2d-{ID}-callee" and not call.callee_leg.gone
    assert call.agent_leg.up and call.agent_leg.started


def test_no_callee_leg_when_none_was_requested():
    call = call_from_row(row(state="dialing_callee"), {f"c2d-{ID}-agent": {"state": "Up"}})
    assert call.callee_leg is None


def test_external_agent_is_recognised():
    assert call_from_row(row(agent="0215550111"), {}).agent_is_external


def test_the_outcome_known_before_a_restart_comes_back():
    """The agent heard the busy tone when the service died: the call ends busy."""
    call = call_from_row(row(state="dialing_callee", reason="callee_busy",
                             callee_channel=f"c2d-{ID}-callee"), {f"c2d-{ID}-agent": {"state": "Up"}})
    assert call.pending_reason is Reason.CALLEE_BUSY and call.reason is None
    assert call.callee_leg.gone


def test_an_ended_call_has_no_pending_reason():
    call = call_from_row(row(state="ended", reason="completed"), {})
    assert call.pending_reason is None


@pytest.mark.parametrize("reason,detail,cause", [
    ("rejected", "refused (cause 28): callee: invalid value '02155501001'", 28),   # 484 to the phone
    ("rejected", "refused (cause 21): outbound_id: invalid value 'Random'", 21),   # 403
    ("rejected", "callee leg ended unanswered (cause 21)", 17),                    # the customer's 603: 486
    ("callee_busy", "callee leg ended unanswered (cause 17)", 17),
    ("failed", "", 34),
])
def test_a_browser_call_ended_before_its_phone_was_told_gets_the_live_paths_answer(reason, detail, cause):
    assert refusal_cause(row(state="ended", reason=reason), detail) == cause
