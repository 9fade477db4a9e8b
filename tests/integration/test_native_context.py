"""Decision 0018, step 1: ``[c2d-native-call]``, the dialplan context in which
Asterisk itself dials and bridges the callee of a REST call
(``[dial] bridging = "dialplan"``), driven here through ARI as the service
drives it, without the service.

The agent leg is originated as the service originates it
(``Local/<callee>@c2d-agent-leg/n`` into a Stasis app, the variables of
``calls.legs.agent_originate``) plus the context's own ``C2D_NATIVE_*``;
when its ``;1`` enters the app (the agent answered) it is continued into
the context. What is checked is what a user sees: the SIP messages the
trunk peer recorded, the CDR rows, the app's events (``Dial``, the
``c2d-native`` UserEvent, ``ChannelDestroyed``) and no channel left. With
the administrator's configs (C2D_BENCH_CONFIGS=admin, our contexts merged,
the trunk with Asterisk's defaults: direct_media=yes,
send_connected_line=yes) as with ours.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from websockets.sync.client import connect

from platforma_c2d.calls import legs
from platforma_c2d.calls.model import Call, Origin
from platforma_c2d.config import DialConfig
from testbed.asterisk import ARI_PASSWORD, ARI_USER
from testbed.sipmessages import identities, sip_user
from testbed.sipp import uas_scenario

pytestmark = pytest.mark.admin_configs

TRUNK_PORT, AGENT_PORT = 5070, 5071
AGENT, CALLEE, CLID = "1001", "0215550100", "0215550199"
#: A suffix of this run's call ids: the CDR file may hold rows of other runs.
RUN = uuid.uuid4().hex[:8]
APP = "c2d-native-test"
CONTEXT = "c2d-native-call"


class AppEvents:
    """An ARI application (``subscribeAll=false``) whose events a thread
    collects; ``wait(predicate)`` returns the first that matches."""

    def __init__(self, ws):
        self.ws = ws
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while True:
                raw = self.ws.recv()
                with self._cond:
                    self.events.append(json.loads(raw))
                    self._cond.notify_all()
        except Exception:  # noqa: BLE001 - the socket closed at the end of the test
            pass

    def wait(self, predicate, timeout: float = 10.0) -> dict:
        """The first event so far or within ``timeout`` seconds for which ``predicate`` holds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self.events:
                    if predicate(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such event in {[e.get('type') for e in self.events]}")
                self._cond.wait(left)

    def of_type(self, kind: str) -> list[dict]:
        with self._cond:
            return [ev for ev in self.events if ev.get("type") == kind]

@pytest.fixture
def app(asterisk):
    url = asterisk.ari_url.replace("http://", "ws://") + f"/ari/events?app={APP}&api_key={ARI_USER}:{ARI_PASSWORD}"
    with connect(url, open_timeout=10) as ws:
        yield AppEvents(ws)


def native_call(asterisk, app, call_id: str, *, tone_s: int = 1, max_s: int = 0,
                ring_s: int = 10, callee: str = CALLEE) -> str:
    """Originate a REST call's agent leg as the service does, with the
    context's variables, and continue its ``;1`` into ``[c2d-native-call]``
    once it enters the app (the agent answered). Returns ``;1``'s id."""
    call = Call(id=call_id, origin=Origin.REST, agent=AGENT, callee=callee, outbound_id=CLID, clid=CLID,
                call_ref=f"ref-{call_id}")
    orig = legs.agent_originate(call, DialConfig())
    variables = dict(orig.variables)
    variables.update({"C2D_NATIVE_DIAL": f"PJSIP/{callee}@trunk", "C2D_NATIVE_TIMEOUT": str(ring_s),
                      "C2D_NATIVE_MAX_S": str(max_s), "C2D_NATIVE_TONE_S": str(tone_s)})
    r = asterisk.ari.post("/channels", params={
        "endpoint": orig.endpoint, "app": APP, "appArgs": orig.app_args, "channelId": orig.channel_id,
        "otherChannelId": orig.other_channel_id, "formats": orig.formats, "timeout": 20},
        json={"variables": variables})
    assert r.status_code == 200, r.text
    app.wait(lambda e: e["type"] == "StasisStart" and e["channel"]["id"] == orig.channel_id)
    r = asterisk.ari.post(f"/channels/{orig.channel_id}/continue",
                          params={"context": CONTEXT, "extension": callee, "priority": 1})
    assert r.status_code == 204, r.text
    return orig.channel_id


def native_event(app, leg: str, timeout: float = 15.0) -> dict:
    """The fields of the context's ``c2d-native`` UserEvent of ``leg``."""
    ev = app.wait(lambda e: e["type"] == "ChannelUserevent" and e["eventname"] == "c2d-native"
                  and e["channel"]["id"] == leg, timeout)
    return ev["userevent"]


def destroyed(app, leg: str, timeout: float = 15.0) -> dict:
    return app.wait(lambda e: e["type"] == "ChannelDestroyed" and e["channel"]["id"] == leg, timeout)


def callee_dials(app, leg: str) -> list[str]:
    """The ``dialstatus`` of the callee's ``Dial`` events of ``leg`` (caller = ``leg``), in order."""
    return [e["dialstatus"] for e in app.of_type("Dial") if (e.get("caller") or {}).get("id") == leg]


def test_answered_call_presents_only_the_clid_and_the_callee_hangup_is_told(asterisk, app, sipp):
    sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=300, talk_ms=1500))
    leg = native_call(asterisk, app, f"nat-answer-{RUN}")
    told = native_event(app, leg)
    assert (told["dialstatus"], told["ended_by"], told["cause"]) == ("ANSWER", "callee", "16"), told
    assert destroyed(app, leg)["cause"] == 16
    # The app, which only had ;1 because it entered Stasis, kept its events after StasisEnd.
    assert callee_dials(app, leg)[-1] == "ANSWER" and "RINGING" in callee_dials(app, leg)
    assert asterisk.wait_idle() == ([], [])
    [invite] = trunk.initial_invites()
    assert sip_user(invite.header("From")[0]) == CLID, invite.text
    assert [sip_user(v) for v in invite.header("P-Asserted-Identity")] == [CLID], invite.text
    strangers = [(m.first_line, h, v) for m in trunk.received() for h, v in identities(m.text)
                 if v not in {CLID, CALLEE, "asterisk", ""}]
    assert strangers == []


def answered_call_rows(asterisk, app, sipp, call_id: str, ring_ms: int, talk_ms: int = 1000) -> list[dict]:
    """The CDR rows of an answered call ``call_id`` whose callee rings ``ring_ms``
    (ms), then talks ``talk_ms`` (ms) and hangs up."""
    sipp("agent", AGENT_PORT, uas_scenario())
    sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=ring_ms, talk_ms=talk_ms))
    destroyed(app, native_call(asterisk, app, call_id))
    return asterisk.wait_cdr_rows(lambda r: r["c2d_call_id"] == call_id, count=2)


def test_cdr_rows_the_callee_row_of_1_and_the_agent_row_of_2(asterisk, app, sipp):
    rows = answered_call_rows(asterisk, app, sipp, f"nat-cdr-{RUN}", ring_ms=300)
    by_leg = {r["c2d_leg"]: r for r in rows}
    assert len(rows) == 2 and set(by_leg) == {"agent", "callee"}, rows
    callee, agent = by_leg["callee"], by_leg["agent"]
    assert (callee["src"], callee["dst"], callee["call_ref"]) == (CLID, CALLEE, f"ref-nat-cdr-{RUN}"), callee
    assert callee["channel"].startswith("Local/0215550100@c2d-native-trunk-") and callee["channel"].endswith(";2")
    assert callee["dstchannel"].startswith("PJSIP/trunk-") and callee["disposition"] == "ANSWERED", callee
    assert (agent["src"], agent["dst"], agent["call_ref"]) == (AGENT, CALLEE, f"ref-nat-cdr-{RUN}"), agent
    assert agent["channel"].endswith(";2") and agent["dstchannel"].startswith("PJSIP/1001-"), agent


def test_the_callee_rows_billsec_counts_from_the_callees_answer(asterisk, app, sipp):
    """What a billing tool reads: the callee's row bills the talk time, not the
    callee's ring time. The callee rings 2.5 s, then talks 2 s (Asterisk's billsec
    drops the fraction: 1 s of talk once read 0); the agent's row
    counts from the agent's answer (the ring time included). The callee's row
    is the one of the Local channel ``;1`` dials the trunk through: answered,
    with the call's CDR variables and ``Dial`` as its last application."""
    rows = answered_call_rows(asterisk, app, sipp, f"nat-billsec-{RUN}", ring_ms=2500, talk_ms=2000)
    by_leg = {r["c2d_leg"]: r for r in rows}
    assert len(rows) == 2 and set(by_leg) == {"agent", "callee"}, rows
    callee, agent = by_leg["callee"], by_leg["agent"]
    assert int(callee["billsec"]) >= 1 and int(agent["billsec"]) >= int(callee["billsec"]) + 2, (callee, agent)
    assert (callee["disposition"], callee["lastapp"], callee["src"], callee["dst"]) == \
        ("ANSWERED", "Dial", CLID, CALLEE), callee
    assert callee["call_ref"] == f"ref-nat-billsec-{RUN}", callee
    # The row starts with the callee's Dial(), its ringing in duration, not in billsec.
    assert int(callee["duration"]) >= int(callee["billsec"]) + 2, callee


def agent_heard(asterisk, leg_name: str, tone: str) -> bool:
    """Whether Asterisk's console log shows ``tone`` played on ``leg_name`` (``Playtones``)."""
    line = f'playtones("{leg_name}", "{tone}")'.lower()     # Asterisk logs it as PlayTones
    return line in asterisk.log_path.read_text(errors="replace").lower()


@pytest.mark.parametrize("code,status,tone,cause", [(486, "BUSY", "busy", "17"),
                                                   (503, "CONGESTION", "congestion", "34")])
def test_callee_refused_the_sip_code_is_told_then_the_tone_plays(asterisk, app, sipp, code, status, tone, cause):
    agent = sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=200, reject_code=code))
    leg = native_call(asterisk, app, f"nat-{code}-{RUN}", tone_s=1)
    told = native_event(app, leg)
    assert (told["dialstatus"], told["sip_code"], told["cause"], told["ended_by"]) == (status, str(code), cause, ""), \
        told
    gone = destroyed(app, leg)
    assert gone["cause"] == int(cause)
    assert callee_dials(app, leg)[-1] == status
    # The agent hears the tone for C2D_NATIVE_TONE_S (1 s), then Asterisk hangs up:
    # the phone's BYE comes that long after the trunk's refusal, and before the
    # service's default tone_s (4 s) would have ended (slack for a loaded machine).
    # The first of each: a loaded machine's late ACK or 200 makes the peers send again.
    refusal = [m for m in trunk.sent() if m.status == code][0]
    bye = agent.wait_for(lambda m: m.direction == "received" and m.method == "BYE")[0]
    # SIPp stamps a message when its loop gets to it (late by a varying lag): 0.2 s of slack below.
    assert 0.8 <= bye.time - refusal.time < 4.0, (refusal.time, bye.time)
    assert agent_heard(asterisk, gone["channel"]["name"], tone)
    assert asterisk.wait_idle() == ([], [])
    # The callee's row (the trunk leg's Local ;2) has the trunk's channel as Party B:
    # written whatever cdr.conf's unanswered says (that drops rows without one), with
    # Dial()'s outcome and nothing billed.
    rows = asterisk.wait_cdr_rows(lambda r: r["c2d_call_id"] == f"nat-{code}-{RUN}", count=2)
    callee = {r["c2d_leg"]: r for r in rows}["callee"]
    disposition = "FAILED" if status == "CONGESTION" and not asterisk.congestion_cdrs else status
    assert (callee["src"], callee["dst"], callee["disposition"], callee["billsec"]) == \
        (CLID, CALLEE, disposition, "0"), callee


def test_callee_no_answer_ends_at_the_ring_timeout_with_congestion(asterisk, app, sipp):
    sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(answer=False))
    leg = native_call(asterisk, app, f"nat-noanswer-{RUN}", ring_s=2, tone_s=1)
    told = native_event(app, leg)
    assert (told["dialstatus"], told["sip_code"], told["ended_by"]) == ("NOANSWER", "180", ""), told
    gone = destroyed(app, leg)
    assert agent_heard(asterisk, gone["channel"]["name"], "congestion")
    [invite] = trunk.initial_invites()
    # The trunk peer logs what it received when its loop gets to it: wait for it.
    cancel = trunk.wait_for(lambda m: m.direction == "received" and m.method == "CANCEL")[0]
    # The 2 s ring timeout, not the default 90 s (slack for a loaded machine).
    # SIPp stamps a message when its loop gets to it (late by a varying lag): 0.2 s of slack below.
    assert 1.8 <= cancel.time - invite.time < 10, (invite.time, cancel.time)
    assert asterisk.wait_idle() == ([], [])


def test_maximum_duration_ends_the_answered_call(asterisk, app, sipp):
    sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())          # talks until hung up
    leg = native_call(asterisk, app, f"nat-max-{RUN}", max_s=2)
    told = native_event(app, leg)
    assert (told["dialstatus"], told["ended_by"]) == ("ANSWER", "timeout"), told
    destroyed(app, leg)
    # The first of each (a late 200 makes Asterisk send its BYE again).
    ack = trunk.wait_for(lambda m: m.direction == "received" and m.method == "ACK")[0]
    bye = trunk.wait_for(lambda m: m.direction == "received" and m.method == "BYE")[0]
    # S(2), not the default 4 h (slack for a loaded machine).
    # SIPp stamps a message when its loop gets to it (late by a varying lag): 0.2 s of slack below.
    assert 1.8 <= bye.time - ack.time < 10, (ack.time, bye.time)
    assert asterisk.wait_idle() == ([], [])

