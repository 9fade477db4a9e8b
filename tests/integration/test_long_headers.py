"""X-Platforma headers Asterisk cannot read whole (SPEC §4): over 4,095 bytes,
``PJSIP_HEADER(read,...)`` fails as for a missing header. Such a header, or a
long second copy of one, is refused with 403 — never taken as absent — on the
Stasis path (browser phone 2001) and on the FastAGI path (desk phone 3001)."""

from __future__ import annotations

import time

import pytest

from platforma_c2d.store.journal import Journal
from testbed.sipmessages import sip_user
from testbed.sipp import uas_scenario
from tests.integration import test_agi, test_webrtc_headers
from tests.integration.test_agi import agi  # noqa: F401 - the FastAGI server fixture

OUT, REF = "X-Platforma-Outbound-ID", "X-Platforma-Call-Ref"
LONG = "a" * 5000
CASES = [
    ([f"{OUT}: 0215550199", f"{REF}: {LONG}"],
     "call_ref: X-Platforma-Call-Ref could not be read whole (over 4,095 bytes)"),
    ([f"{OUT}: 0215550199", f"{REF}: ord-42", f"{REF}: {LONG}"],
     "call_ref: X-Platforma-Call-Ref given more than once"),
]


@pytest.mark.parametrize("headers,why", CASES, ids=["long", "long-second-copy"])
def test_browser_call_with_an_unreadable_header_is_refused_403(asterisk, service, sipp,
                                                               headers, why):
    trunk = sipp("trunk", test_webrtc_headers.TRUNK_PORT, uas_scenario())
    phone = test_webrtc_headers.dial(sipp, headers=headers)
    assert test_webrtc_headers.final_response(phone) == 403
    call = test_webrtc_headers.only_call(service)
    assert call["state"] == "ended" and call["reason"] == "rejected" and call["call_ref"] == ""
    detail = Journal(service.store_url).events(call["id"])[-1]["detail"]
    assert detail == f"refused (cause 21): {why}", detail
    time.sleep(0.3)
    assert trunk.received() == []


def test_browser_call_with_a_long_header_of_another_name_goes_out(asterisk, service, sipp):
    """Only X-Platforma headers are concerned: a long header of another name
    beside readable ones does not stop the call."""
    trunk = sipp("trunk", test_webrtc_headers.TRUNK_PORT, uas_scenario())
    phone = test_webrtc_headers.dial(sipp, headers=[f"{OUT}: 0215550199", f"{REF}: ord-42",
                                                    f"X-Other: {LONG}"], talk_ms=300)
    assert test_webrtc_headers.final_response(phone) == 200
    assert sip_user(trunk.received("INVITE")[0].header("From")[0]) == "0215550199"
    phone.wait(timeout=20)
    call = service.wait_state(test_webrtc_headers.only_call(service)["id"], "ended")
    assert call["call_ref"] == "ord-42" and call["reason"] == "completed"


@pytest.mark.parametrize("headers,why", CASES, ids=["long", "long-second-copy"])
def test_agi_call_with_an_unreadable_header_is_refused_403(asterisk, agi, sipp,  # noqa: F811
                                                           headers, why):
    _svc, journal = agi
    trunk = sipp("trunk", test_agi.TRUNK_PORT, uas_scenario())
    phone = test_agi.dial(sipp, headers=headers)
    assert test_agi.final_responses(phone) == [403]
    [call] = test_agi.wait_calls(journal)
    assert call["origin"] == "agi" and call["reason"] == "rejected" and call["call_ref"] == ""
    detail = journal.events(call["id"])[-1]["detail"]
    assert detail == f"refused (invalid-request; fields call_ref): {why}", detail
    time.sleep(0.3)
    assert trunk.received() == []
