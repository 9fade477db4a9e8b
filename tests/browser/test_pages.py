"""The pages of SPEC §13 in a real browser, against the real Asterisk.

Headless Chromium (tests/browser/remote.py) opens the pages from the
service's own origin, logs in with the API token (exchanged for a page
session cookie), and is used the way an agent or a supervisor would: typing,
pressing Enter, clicking. Checked through what the others see: the SIP
messages the trunk peer (SIPp on 5070) recorded, the calls the REST API
returns, the frames on the phone's WebSocket, the board's rows. No page may
log an error or a Content-Security-Policy violation.

Screenshots are written to each test's work directory; with
``C2D_UPDATE_SCREENSHOTS=1`` also to docs/img/ (the ones docs/pages.md shows).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import pytest

from testbed.sipmessages import header_values, sip_user
from testbed.sipp import uas_scenario

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
TOKEN = "pages-test-token"
AGENT, SIP_PASSWORD = "2101", "bench-2101-webrtc"  # the WebRTC endpoint of testbed/overlay
CALLEE = "0215550100"
TRUNK_PORT, DESK_AGENT_PORT = 5070, 5071
DEFAULT_CLID, POOL = "0115550000", ("0115550001", "0115550002")


@pytest.fixture
def pages_service(make_service):
    """The service with an API token (the pages need a login)."""
    svc = make_service({"auth": {"tokens_sha256": [hashlib.sha256(TOKEN.encode()).hexdigest()]}})
    svc.http.headers["Authorization"] = f"Bearer {TOKEN}"
    return svc


def save_screenshot(b, workdir: Path, name: str, page: str = "main") -> Path:
    """A PNG of the page in the work directory (and in docs/img/ when asked)."""
    path = b.screenshot(workdir / f"{name}.png", page=page)
    assert path.stat().st_size > 10_000, path  # a page, not a blank
    if os.environ.get("C2D_UPDATE_SCREENSHOTS") == "1":
        shutil.copy(path, REPO / "docs/img" / f"{name}.png")
    return path


def log_in(b, url: str, page: str = "main") -> None:
    """Open ``url``, log in with the API token, wait until the page is ready."""
    b.do("goto", url, page=page)
    b.wait_for("!document.getElementById('login-section').hidden || document.body.dataset.ready", page=page)
    assert not b.do("evaluate", "document.getElementById('login-section').hidden", page=page)
    b.do("fill", "#token", TOKEN, page=page)
    b.do("press", "#token", "Enter", page=page)
    b.wait_for("document.body.dataset.ready === 'true'", page=page)


def register_phone(b, service) -> None:
    log_in(b, f"{service.url}/click2dial/phone/?callee={CALLEE}&call_ref=CRM-4711")
    b.do("fill", "#extension", AGENT)
    b.do("fill", "#sip-password", SIP_PASSWORD)
    b.do("press", "#sip-password", "Enter")
    b.wait_text("#reg-status", f"Registered as {AGENT}")


def assert_clean_log(b) -> None:
    """No page error, console error or CSP violation in any tab."""
    bad = [line for line in b.log() if "error" in line.lower() or "content security policy" in line.lower()]
    assert bad == [], bad


def sent_invites(b) -> list[str]:
    return [f["text"] for f in b.ws_frames() if f["dir"] == "sent" and f["text"].startswith("INVITE ")]


def assert_trunk_saw_clid(trunk, clid: str) -> None:
    invites = trunk.received("INVITE")
    assert len(invites) == 1, [m.first_line for m in trunk.received()]
    assert invites[0].first_line.startswith(f"INVITE sip:{CALLEE}@"), invites[0].first_line
    assert sip_user(invites[0].header("From")[0]) == clid, invites[0].header("From")
    assert [sip_user(v) for v in invites[0].header("P-Asserted-Identity")] == [clid]


def test_phone_dials_with_the_headers_and_shows_the_outcome(asterisk, pages_service, sipp, browser, workdir):
    """Opened by a CRM with the number and the reference in its URL; the agent
    registers. A bad number is refused in the page with the API's own words
    and nothing is dialled. Then pick a CLID, Enter dials: the trunk sees that
    CLID, the page shows ringing, the call, a running timer, mute, and after
    hang-up the journalled outcome."""
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=1500))
    b = browser()
    register_phone(b, pages_service)
    assert b.do("inputValue", "#callee") == CALLEE and b.do("inputValue", "#call-ref") == "CRM-4711"

    # SPEC §1 in the page: the same words as the API's 400, nothing dialled.
    b.do("fill", "#callee", "+27215550100")
    b.do("fill", "#call-ref", "CRM 4711")
    b.do("press", "#callee", "Enter")
    api = pages_service.post_call({"agent": AGENT, "callee": "+27215550100", "outbound_id": DEFAULT_CLID,
                                   "call_ref": "CRM 4711"})
    assert api.status_code == 400
    fields = api.json()["details"]["fields"]
    assert b.wait_text("#callee-error", "invalid value") == fields["callee"]
    assert b.do("textContent", "#call_ref-error") == fields["call_ref"]
    assert b.do("getAttribute", "#callee", "aria-invalid") == "true"
    assert b.do("evaluate", "document.activeElement.id") == "callee"
    time.sleep(0.5)
    assert sent_invites(b) == [] and trunk.received("INVITE") == []
    assert pages_service.http.get("/click2dial/calls").json()["total"] == 0

    b.do("fill", "#callee", CALLEE)
    b.do("fill", "#call-ref", "CRM-4711")
    b.do("selectOption", "#outbound-id", POOL[1])
    b.do("press", "#callee", "Enter")
    assert b.do("textContent", "#callee-error") == ""
    b.wait_text("#call-state", f"Ringing {CALLEE}")
    b.wait_text("#call-state", f"Connected to {CALLEE}")
    b.wait_for("document.getElementById('timer').textContent >= '0:02'", timeout_s=10)
    b.do("click", "#mute")
    assert b.do("getAttribute", "#mute", "aria-pressed") == "true"
    save_screenshot(b, workdir, "phone-connected")
    b.do("click", "#hangup")
    outcome = b.wait_text("#outcome", "Ended: Completed (completed)")
    assert "talk 0:0" in outcome, outcome
    save_screenshot(b, workdir, "phone")

    invites = sent_invites(b)
    assert invites, b.ws_frames()
    for invite in invites:  # the first is challenged, the second authenticated
        assert invite.startswith(f"INVITE sip:{CALLEE}@127.0.0.1 SIP/2.0"), invite
        assert header_values(invite, "X-Platforma-Outbound-ID") == [POOL[1]], invite
        assert header_values(invite, "X-Platforma-Call-Ref") == ["CRM-4711"], invite
    assert_trunk_saw_clid(trunk, POOL[1])
    call = pages_service.http.get("/click2dial/calls").json()["calls"][0]
    assert (call["origin"], call["agent"], call["outbound_id"], call["clid"], call["call_ref"], call["reason"]) == \
        ("webrtc", AGENT, POOL[1], POOL[1], "CRM-4711", "completed"), call
    assert_clean_log(b)
    b.do("click", "#unregister")
    b.wait_text("#reg-status", "Not registered")


def test_phone_answers_a_rest_call_placed_for_its_agent(asterisk, pages_service, sipp, browser, workdir):
    """A CRM places a REST call for 2101: the page rings with the callee and
    the reference, the agent answers, the callee is connected, the agent hangs
    up. A second one is declined in the page."""
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=1000))
    b = browser()
    register_phone(b, pages_service)
    r = pages_service.post_call({"agent": AGENT, "callee": CALLEE, "outbound_id": POOL[0],
                                 "call_ref": "crm-rest:4712"})
    assert r.status_code == 201, r.text
    call_id = r.json()["id"]
    b.wait_text("#call-state", "Incoming call")
    b.wait_text("#call-peer", f"For {CALLEE} · ref crm-rest:4712")
    assert b.do("isVisible", "#answer")
    assert b.do("evaluate", "document.activeElement.id") == "answer"
    save_screenshot(b, workdir, "phone-incoming")
    b.do("press", "#answer", "Enter")
    b.wait_text("#call-state", f"Connected to {CALLEE}", timeout_s=15)
    assert pages_service.get_call(call_id)["state"] == "connected"
    time.sleep(1.0)
    b.do("press", "body", "Escape")  # the keyboard hangs up
    outcome = b.wait_text("#outcome", "Ended: Completed (completed)")
    ended = pages_service.get_call(call_id)
    assert ended["state"] == "ended" and ended["reason"] == "completed", ended
    assert_trunk_saw_clid(trunk, POOL[0])
    assert "completed" in outcome

    # Declined in the page: 486 from the browser, the call ends agent_busy.
    r = pages_service.post_call({"agent": AGENT, "callee": CALLEE, "outbound_id": POOL[0], "call_ref": "declined"})
    assert r.status_code == 201, r.text
    b.wait_text("#call-peer", "ref declined")
    b.do("click", "#decline")
    b.wait_text("#outcome", "Ended: Agent busy (agent_busy)")
    assert pages_service.wait_state(r.json()["id"], "ended", timeout=10)["reason"] == "agent_busy"
    assert len(trunk.received("INVITE")) == 1  # the customer was never dialled for it
    assert_clean_log(b)
    b.do("click", "#unregister")
    b.wait_text("#reg-status", "Not registered")


def test_board_shows_calls_appear_change_state_and_end(asterisk, pages_service, sipp, browser, workdir):
    """Real calls drive the board through the event stream, without a reload: one refused at once
    (agent unavailable), one that rings the agent, rings the callee, talks
    and ends."""
    b = browser()
    log_in(b, f"{pages_service.url}/click2dial/board/")
    origin = b.do("evaluate", "performance.timeOrigin")
    b.wait_text("#feed", "live: event stream")

    r = pages_service.post_call({"agent": "1009", "callee": CALLEE, "outbound_id": POOL[1], "call_ref": "no-phone"})
    assert r.status_code == 201, r.text
    b.wait_for("document.querySelector('#outcomes tr[data-reason=\"agent_unavailable\"]')")

    sipp("agent", DESK_AGENT_PORT, uas_scenario(ring_ms=1500))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=2000, talk_ms=2500))
    r = pages_service.post_call({"agent": "1001", "callee": CALLEE, "outbound_id": POOL[0], "call_ref": "board-1"})
    assert r.status_code == 201, r.text
    call_id = r.json()["id"]
    row = f"#live-calls tr[data-call-id=\"{call_id}\"]"
    b.wait_for(f"document.querySelector('{row}[data-state=\"dialing_agent\"]')", timeout_s=10)
    b.wait_for(f"document.querySelector('{row}[data-state=\"dialing_callee\"]')", timeout_s=10)
    b.wait_for(f"document.querySelector('{row}[data-state=\"connected\"]')", timeout_s=10)
    text = b.do("textContent", row)
    assert "1001" in text and CALLEE in text and POOL[0] in text and "board-1" in text, text
    assert b.do("textContent", "#counters [data-state=\"connected\"] b") == "1"
    save_screenshot(b, workdir, "board")
    b.wait_for(f"!document.querySelector('{row}')", timeout_s=15)
    b.wait_for(f"document.querySelector('#ended-calls tr[data-call-id=\"{call_id}\"][data-reason=\"completed\"]')")
    assert b.do("textContent", "#outcomes tr[data-reason=\"completed\"] td.num") == "1"
    clid_row = b.do("textContent", f"#clid-rates tr[data-clid=\"{POOL[0]}\"]")
    assert clid_row.startswith(f"{POOL[0]}11100%"), clid_row
    assert b.do("evaluate", "document.querySelectorAll('#chart-svg rect.seg-completed').length") == 1
    assert b.do("evaluate", "document.querySelectorAll('#chart-svg rect.seg-unreachable').length") == 1
    assert b.do("evaluate", "performance.timeOrigin") == origin  # never reloaded
    trunk.wait_for(lambda m: m.direction == "sent" and m.method == "BYE")
    save_screenshot(b, workdir, "board-after")
    assert_clean_log(b)
