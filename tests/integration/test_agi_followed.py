"""SPEC §6: an AGI call is never left open in the journal, whatever hangup
handler the dialplan has or lacks, and a hundred calls arriving at once are
all served.

With the administrator-style configs (C2D_BENCH_CONFIGS=admin) phone 3001
goes to the administrator's own ``[from-internal]``: AGI, check
``C2D_STATUS``, ``Dial`` — no hangup handler of ours, so only the service
following the channel (the AGI server hands it to the Stasis app) can end
the call. With our configs our hangup handler ends it; both must hold.
"""

from __future__ import annotations

import time

import pytest

from testbed.sipp import uas_scenario
from tests.integration.test_agi import TRUNK_PORT, dial, final_responses, start_agi_named, wait_calls

pytestmark = pytest.mark.admin_configs

def agi_and_service(make_service, name):
    """``agi`` and ``serve`` sharing one journal (``serve`` connected to ARI first)."""
    make_service(name=name)
    return start_agi_named(make_service, name)


def test_agi_calls_end_in_the_journal_with_their_outcome(asterisk, make_service, sipp):
    _agi, journal = agi_and_service(make_service, "followed")
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200))
    phone = dial(sipp, talk_ms=1500)
    assert phone.wait(timeout=20) == 0, phone.messages()
    trunk.stop()
    [answered] = wait_calls(journal)
    assert answered["state"] == "ended", answered
    assert answered["reason"] == "completed" and answered["ended_by"] == "agent", answered
    assert answered["answered_at"] and answered["duration_s"] >= 1, answered

    sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200, reject_code=486))
    busy_phone = dial(sipp, callee="0215550101")
    assert final_responses(busy_phone) != []
    calls = wait_calls(journal, count=2)
    busy = next(c for c in calls if c["callee"] == "0215550101")
    assert (busy["state"], busy["reason"], busy["ended_by"]) == ("ended", "callee_busy", "callee"), busy
    assert busy["answered_at"] is None


def test_a_hundred_agi_calls_at_once_are_all_journalled_and_completed(asterisk, make_service, sipp):
    _agi, journal = agi_and_service(make_service, "burst")
    n = 100
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(talk_ms=1500))
    phone = dial(sipp, calls=n, rate=400, wait_bye=True)
    assert phone.wait(timeout=45) == 0, "some calls failed: " + str(final_responses(phone, n, 1))
    assert final_responses(phone, count=n) == [200] * n
    # one dialog each (re-INVITEs of direct media on the administrator's trunk aside)
    assert len({m.header("Call-ID")[0] for m in trunk.received("INVITE")}) == n
    calls = wait_calls(journal, count=n, timeout=20)
    assert len(calls) == n
    assert [c for c in calls if (c["state"], c["reason"], c["origin"]) != ("ended", "completed", "agi")] == []


def test_agi_calls_of_a_time_without_the_service_are_ended_or_followed_when_it_connects(
        asterisk, make_service, sipp):
    """The service was not running: a call that ended meanwhile is ended
    ``failed`` when it connects (its outcome was lost), a call still up is
    followed from then on and ends ``completed``."""
    _agi, journal = start_agi_named(make_service, "later")
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    short = dial(sipp, callee="0215550101", talk_ms=300)
    assert short.wait(timeout=20) == 0
    # Up until long after the service has started: a start took 10 s on a
    # loaded machine, past a 6 s call, which then ended before it was followed.
    long = dial(sipp, callee="0215550102", talk_ms=20000)
    deadline = time.monotonic() + 10      # the long call is answered (its ACK is the second)
    while len(trunk.received("ACK")) < 2:
        assert time.monotonic() < deadline, "the long call was not answered"
        time.sleep(0.05)
    admin = asterisk.configs == "admin"   # no hangup handler of ours: both are left open
    before = {c["callee"]: c["state"] for c in
              wait_calls(journal, count=2 if admin else 1, state="dialing_callee")}
    make_service(name="later")              # reconciles on connect
    assert long.wait(timeout=40) == 0
    calls = {c["callee"]: c for c in wait_calls(journal, count=2)}
    if admin:
        assert before == {"0215550101": "dialing_callee", "0215550102": "dialing_callee"}
        assert (calls["0215550101"]["state"], calls["0215550101"]["reason"]) == ("ended", "failed")
    assert (calls["0215550102"]["state"], calls["0215550102"]["reason"]) == ("ended", "completed")
