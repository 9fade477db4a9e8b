"""The engine against a scripted ARI (an in-process aiohttp server), for the orderings a
real Asterisk produces only sometimes: field reports C01, C02, C04, C07, C09, C10.

The AriClient, engine, Stasis router and journal are the real ones; only
Asterisk is replaced by an HTTP server on 127.0.0.1 that records every
request and can deliver events *before* it answers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import count

import pytest
from aiohttp import web

from platforma_c2d.ari.client import AriClient
from platforma_c2d.calls.engine import CallEngine
from platforma_c2d.calls.policy import Policy
from platforma_c2d.calls.stasis import StasisApp
from platforma_c2d.clid.picker import ClidPicker
from platforma_c2d.config import ClidConfig, DialConfig, PolicyConfig
from platforma_c2d.store.clids import ClidStore
from platforma_c2d.metrics import Metrics
from platforma_c2d.rules import validate_call_request
from platforma_c2d.store.journal import Journal
from platforma_c2d.store.writer import JournalWriter

BODY = {"agent": "1001", "callee": "0215550100", "outbound_id": "0215550199", "call_ref": "ord-42"}


@dataclass
class Sent:
    """One request as the scripted ARI received it.

    ``query``: the decoded query parameters; ``raw_query``: the query string
    as it came over the wire; ``body``: the decoded JSON body (None when
    empty); ``headers``: case-insensitive; ``received``/``answered``:
    positions in the order of everything the server received and answered
    (``answered`` is None until it answered).
    """

    method: str
    path: str
    query: dict[str, str]
    raw_query: str
    body: object
    headers: Mapping[str, str]
    received: int
    answered: int | None = field(default=None)


class ScriptedAri:
    """Records requests; ``before_reply[(method, path_prefix)]`` runs (async) before answering.

    ``status[(method, path_prefix)]`` answers with that status and a JSON
    error instead of 200; ``answers[(method, path_prefix)]`` with that JSON
    body (the longest matching prefix wins; else ``{"id": ...}``). The
    server listens on a socket of its own on
    127.0.0.1 (``url``); ``run(coro)`` serves while ``coro`` runs on a new
    event loop, then closes ``clients`` and the server.
    """

    def __init__(self):
        self.requests: list[Sent] = []
        self.before_reply: dict = {}
        self.status: dict = {}
        self.answers: dict = {}
        self.clients: list[AriClient] = []
        self._order = count()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self._sock.getsockname()[1]

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        sent = Sent(request.method, request.path, dict(request.query), request.rel_url.raw_query_string,
                    json.loads(raw) if raw else None, request.headers.copy(), next(self._order))
        self.requests.append(sent)
        try:
            for (method, prefix), hook in list(self.before_reply.items()):
                if sent.method == method and sent.path.startswith(prefix):
                    await hook(sent)
            for (method, prefix), code in self.status.items():
                code = code(sent) if callable(code) else code   # a callable may pick by query
                if code and sent.method == method and sent.path.startswith(prefix):
                    return web.json_response({"message": "scripted"}, status=code)
            found = [(len(prefix), body) for (method, prefix), body in self.answers.items()
                     if sent.method == method and sent.path.startswith(prefix)]
            if found:
                return web.json_response(max(found, key=lambda f: f[0])[1])
            return web.json_response({"id": sent.query.get("channelId", "x")})
        finally:
            sent.answered = next(self._order)

    def run(self, coro):
        """Run ``coro`` on a new event loop while the server answers; returns its result."""
        return asyncio.run(self._serve(coro))

    async def _serve(self, coro):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, self._sock).start()
        try:
            return await coro
        finally:
            for client in self.clients:
                await client.close()
            await runner.cleanup()

    def close(self) -> None:
        """Close the listening socket (also when ``run`` was never called)."""
        self._sock.close()

    def sent(self, method: str, prefix: str) -> list[Sent]:
        return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]

    def originates(self) -> list[Sent]:
        """``POST /ari/channels`` requests (legs originated)."""
        return [r for r in self.requests if r.method == "POST" and r.path == "/ari/channels"]


@pytest.fixture
def world(tmp_path):
    script = ScriptedAri()
    ari = AriClient(script.url, "c2d", "pw", "click2dial")
    script.clients.append(ari)
    journal = Journal(f"sqlite:///{tmp_path}/calls.sqlite3")
    dial = DialConfig(agent_ring_timeout_s=1, callee_ring_timeout_s=1, tone_s=0)
    engine = CallEngine(ari, journal, dial, Metrics(), JournalWriter(journal))
    picker = ClidPicker(ClidConfig(), ClidStore(journal.engine))
    stasis = StasisApp(engine, ari, picker, Policy(ClidConfig(), PolicyConfig()))
    serve = script.run

    def run_then_settle(coro):
        # The journal is written by its own thread: let it catch up before
        # a test reads it.
        result = serve(coro)
        engine.writer.flush().result(timeout=10)
        return result

    script.run = run_then_settle
    yield script, engine, stasis, journal
    engine.writer.close()
    journal.close()
    script.close()


def ev(kind: str, channel_id: str, state: str = "Down", **extra) -> dict:
    return {"type": kind, "channel": {"id": channel_id, "name": "PJSIP/x-0001", "state": state}, **extra}


def test_c10_leg_variables_travel_in_the_json_body(world):
    script, engine, _, _ = world

    async def go():
        return await engine.start_rest_call(validate_call_request(BODY), "0215550199")

    call = script.run(go())
    (post,) = script.originates()
    assert post.headers["Content-Type"] == "application/json"
    assert post.headers["Authorization"] == "Basic " + base64.b64encode(b"c2d:pw").decode()
    body = post.body
    assert set(body) == {"variables"}
    assert body["variables"]["CDR(call_ref)"] == "ord-42"
    assert body["variables"]["CDR(c2d_call_id)"] == call.id
    assert body["variables"]["C2D_LEG_SHOW"] == "0215550100"      # what the phone is shown
    assert body["variables"]["C2D_LEG_DIAL"] == "PJSIP/1001"
    params = post.query
    assert params["channelId"] == f"c2d-{call.id}-agent" and params["app"] == "click2dial"
    assert params["endpoint"] == "Local/0215550100@c2d-agent-leg/n"   # ADR 0014
    assert params["otherChannelId"] == f"c2d-{call.id}-agent-dial"
    assert params["appArgs"] == f"c2d,agent,{call.id}" and params["timeout"] == "6"
    assert not any(k.startswith(("CDR", "CALLERID", "variables")) for k in params)
    # On the wire every reserved character is percent-encoded, as Asterisk expects.
    assert "endpoint=Local%2F0215550100%40c2d-agent-leg%2Fn" in post.raw_query.split("&")
    assert f"appArgs=c2d%2Cagent%2C{call.id}" in post.raw_query.split("&")


def test_c01_stasis_start_before_the_originate_answer_is_not_lost(world):
    script, engine, stasis, journal = world

    async def early_start(request):
        cid = request.query.get("channelId", "")
        if request.path == "/ari/channels" and cid.endswith("-agent"):
            await stasis.on_event(ev("StasisStart", cid, "Up"))

    script.before_reply[("POST", "/ari/channels")] = early_start

    async def go():
        call = await engine.start_rest_call(validate_call_request(BODY), "0215550199")
        return call

    call = script.run(go())
    # The early StasisStart (agent answered) was matched: the callee was dialled.
    posts = [r.query["channelId"] for r in script.originates()]
    assert posts == [f"c2d-{call.id}-agent", f"c2d-{call.id}-callee"]
    agent_post, callee_post = script.originates()
    assert callee_post.received < agent_post.answered  # really before the originate's answer
    assert journal.get(call.id)["state"] == "dialing_callee"
    assert not script.sent("DELETE", "/ari/channels")  # no "unknown channel" hangup


def test_c01_failed_originate_ends_the_pre_registered_call(world):
    script, engine, _, journal = world
    script.status[("POST", "/ari/channels")] = 500

    call = script.run(engine.start_rest_call(validate_call_request(BODY), "0215550199"))
    assert len(script.originates()) == 1
    assert call.ended and journal.get(call.id)["reason"] == "agent_unavailable"
    assert engine.by_channel == {} and engine.calls == {}


def test_c02_nothing_is_sent_on_a_leg_before_its_stasis_start(world):
    script, engine, stasis, _ = world

    async def go():
        call = await engine.start_rest_call(validate_call_request(BODY), "0215550199")
        agent = call.agent_leg.channel_id
        # Up arrives before StasisStart: nothing may be done on the leg yet.
        await stasis.on_event(ev("ChannelStateChange", agent, "Up"))
        before = len(script.requests)
        await stasis.on_event(ev("StasisStart", agent, "Up"))
        return call, before

    call, before = script.run(go())
    assert before == 1  # only the originate
    assert script.originates()[-1].query["channelId"] == f"c2d-{call.id}-callee"


def test_c09_repeated_events_never_dial_or_bridge_twice(world):
    script, engine, stasis, journal = world

    async def go():
        call = await engine.start_rest_call(validate_call_request(BODY), "0215550199")
        agent, callee = call.agent_leg.channel_id, f"c2d-{call.id}-callee"
        for _ in range(2):
            await stasis.on_event(ev("StasisStart", agent, "Up"))
        for _ in range(2):
            await stasis.on_event(ev("StasisStart", callee, "Up"))
            await stasis.on_event(ev("ChannelStateChange", callee, "Up"))
        return call

    call = script.run(go())
    assert len(script.originates()) == 2
    assert len([r for r in script.requests if r.method == "POST" and r.path == f"/ari/bridges/c2d-{call.id}"]) == 1
    assert len(script.sent("POST", f"/ari/bridges/c2d-{call.id}/addChannel")) == 1
    assert journal.get(call.id)["state"] == "connected"


def test_c07_teardown_treats_404_as_gone_and_destroys_the_bridge_once(world):
    script, engine, stasis, journal = world
    script.status[("DELETE", "/ari/channels")] = 404

    async def go():
        call = await engine.start_rest_call(validate_call_request(BODY), "0215550199")
        agent, callee = call.agent_leg.channel_id, f"c2d-{call.id}-callee"
        await stasis.on_event(ev("StasisStart", agent, "Up"))
        await stasis.on_event(ev("StasisStart", callee, "Up"))
        await stasis.on_event(ev("StasisEnd", agent))
        await stasis.on_event(ev("ChannelDestroyed", agent, cause=16))
        await stasis.on_event(ev("ChannelDestroyed", agent, cause=16))
        await stasis.on_event(ev("ChannelDestroyed", callee, cause=16))
        return call

    call = script.run(go())
    row = journal.get(call.id)
    assert row["state"] == "ended" and row["reason"] == "completed"
    assert len(script.sent("DELETE", f"/ari/bridges/c2d-{call.id}")) == 1
    assert len(script.sent("DELETE", f"/ari/channels/c2d-{call.id}-callee")) == 1


def test_c04_unknown_cause_after_our_ring_timer_is_agent_no_answer(world):
    script, engine, stasis, journal = world

    async def go():
        call = await engine.start_rest_call(validate_call_request({**BODY, "call_ref": "t-noans"}), "0215550199")
        agent = call.agent_leg.channel_id
        await stasis.on_event(ev("ChannelStateChange", agent, "Ringing"))
        await asyncio.sleep(1.2)  # agent_ring_timeout_s = 1: our timer hangs the leg up
        await stasis.on_event(ev("ChannelDestroyed", agent, cause=0))
        return call

    call = script.run(go())
    hangups = script.sent("DELETE", f"/ari/channels/c2d-{call.id}-agent")
    assert hangups and hangups[0].query["reason_code"] == "19"
    row = journal.get(call.id)
    assert row["reason"] == "agent_no_answer" and row["call_ref"] == "t-noans"
    assert len(script.originates()) == 1  # the callee was never dialled


def test_a_cancel_while_the_agent_leg_is_created_still_hangs_it_up(world):
    """DELETE arrives while Asterisk is still creating the agent's channel:
    its hang-up finds no channel (404); the leg is hung up once the
    originate answers, and no ring timer is left on the ended call."""
    script, engine, _, journal = world
    script.status[("DELETE", "/ari/channels/")] = 404   # not there yet

    async def cancel_meanwhile(sent):
        call = engine.calls[sent.query["channelId"][4:36]]
        await engine.cancel(call)

    script.before_reply[("POST", "/ari/channels")] = cancel_meanwhile

    async def go():
        call = await engine.start_rest_call(validate_call_request(BODY), "0215550199")
        return call, dict(engine._timers)

    call, timers = script.run(go())
    originate = script.originates()[0]
    hangups = script.sent("DELETE", f"/ari/channels/c2d-{call.id}-agent")
    assert any(h.received > originate.answered for h in hangups), hangups
    assert call.id not in timers
    row = journal.get(call.id)
    assert row["state"] == "ended" and row["reason"] == "cancelled"


def test_a_call_cancelled_while_its_callee_is_originated_leaves_no_timer(world):
    """No timer is armed for a call that ended during an await: it would
    hold the call in memory for ever."""
    script, engine, stasis, journal = world

    async def cancel_meanwhile(sent):
        if sent.query.get("channelId", "").endswith("-callee"):
            await engine.cancel(engine.calls[sent.query["channelId"][4:36]])

    script.before_reply[("POST", "/ari/channels")] = cancel_meanwhile

    async def go():
        call = await engine.start_rest_call(validate_call_request(BODY), "0215550199")
        await stasis.on_event(ev("StasisStart", call.agent_leg.channel_id, "Up"))
        return call

    call = script.run(go())
    assert call.ended and journal.get(call.id)["reason"] == "cancelled"
    assert engine._timers == {} and engine.calls == {} and engine.by_channel == {}


def _taken_back(engine, journal, state: str, reason: str | None, channels: dict):
    """A call of an earlier run as the journal has it, rebuilt against ``channels``."""
    from platforma_c2d.calls.model import Call, Leg, Origin, Reason, State, new_call_id
    from platforma_c2d.calls.recovery import call_from_row

    call = Call(id=new_call_id(), origin=Origin.REST, agent="1001", callee="0215550100",
                outbound_id="0215550199", clid="0215550199", call_ref="r", state=State(state))
    call.agent_leg = Leg("agent", f"c2d-{call.id}-agent")
    if state == "dialing_callee":
        call.callee_leg = Leg("callee", f"c2d-{call.id}-callee")
    call.pending_reason = Reason(reason) if reason else None
    journal.record(call, "before the restart")
    return call_from_row(journal.get_row(call.id),
                         {k.format(id=call.id): v for k, v in channels.items()})


def test_a_known_outcome_stands_after_a_restart_even_with_every_leg_gone(world):
    """The service died during the busy tone and the agent hung up meanwhile."""
    script, engine, _, journal = world
    call = _taken_back(engine, journal, "dialing_callee", "callee_busy", {})
    script.run(engine.resume(call, {}))
    assert journal.get(call.id)["reason"] == "callee_busy"
    assert not script.originates()


def test_an_agent_answer_not_yet_on_disk_never_dials_the_callee_after_a_restart(world):
    """The agent was in the app, the callee may have been dialled: end it, dial nobody."""
    script, engine, _, journal = world
    call = _taken_back(engine, journal, "dialing_agent", None,
                       {"c2d-{id}-agent": {"state": "Up", "dialplan": {"app_name": "Stasis"}}})
    script.run(engine.resume(call, {}))
    assert journal.get(call.id)["reason"] == "failed"
    assert not script.originates()


def test_a_callee_still_ringing_after_a_reconnect_counts_as_having_rung(world):
    """Its 180 (or a 183, which leaves no channel state) may have come while
    the socket was down: a ring timeout then is no answer, not unreachable."""
    from platforma_c2d.calls.recovery import reconcile

    script, engine, stasis, journal = world

    async def go():
        call = await engine.start_rest_call(validate_call_request(BODY), "0215550199")
        agent_id, callee_id = f"c2d-{call.id}-agent", f"c2d-{call.id}-callee"
        await stasis.on_event(ev("StasisStart", agent_id, "Up"))
        assert call.callee_leg is not None and not call.callee_leg.ringing
        script.answers[("GET", "/ari/channels")] = [
            {"id": agent_id, "state": "Up", "dialplan": {"app_name": "Stasis", "app_data": "click2dial"}},
            {"id": callee_id, "state": "Down", "dialplan": {"app_name": "AppDial2", "app_data": ""}}]
        script.answers[("GET", "/ari/bridges")] = [{"id": call.bridge_id}]
        await reconcile(engine, engine.ari, stasis)
        await asyncio.sleep(1.3)                   # the callee's ring timer (1 s) fires
        await stasis.on_event(ev("ChannelDestroyed", callee_id, cause=16))
        return call

    call = script.run(go())
    assert journal.get(call.id)["reason"] == "callee_no_answer"


def test_a_browser_call_being_handled_during_a_reconnect_is_not_taken_twice(world):
    """Its header read was in flight when the socket came back: reconcile
    leaves it to that handler, and the customer is dialled once."""
    from platforma_c2d.calls.recovery import reconcile

    script, engine, stasis, journal = world
    browser = {"id": "1700000000.1", "name": "PJSIP/2001-00000001", "state": "Ring",
               "dialplan": {"context": "c2d-webrtc", "exten": "0215550100", "priority": 2,
                            "app_name": "Stasis", "app_data": "click2dial"}}
    release = asyncio.Event()

    async def slow_header_read(_request):
        await release.wait()

    script.before_reply[("GET", f"/ari/channels/{browser['id']}/variable")] = slow_header_read
    # No X-Platforma headers: Asterisk answers 500 to PJSIP_HEADER(read,...)
    # and PJSIP_HEADERS(X-Platforma-...), and lists the others' names.
    script.status[("GET", f"/ari/channels/{browser['id']}/variable")] = (
        lambda sent: None if sent.query.get("variable") == "PJSIP_HEADERS()" else 500)
    script.answers[("GET", f"/ari/channels/{browser['id']}/variable")] = {"value": "Via,From,To"}
    script.answers[("GET", "/ari/channels")] = [browser]
    script.answers[("GET", "/ari/bridges")] = []

    async def go():
        await stasis.dispatch({"type": "StasisStart", "channel": browser, "args": []})
        await asyncio.sleep(0.2)                   # its header reads are waiting
        assert stasis.handling(browser["id"])
        await reconcile(engine, engine.ari, stasis)
        release.set()
        for _ in range(50):
            if not stasis.handling(browser["id"]):
                break
            await asyncio.sleep(0.05)

    script.run(go())
    callee_posts = [r for r in script.originates() if r.query["channelId"].endswith("-callee")]
    assert len(callee_posts) == 1, [r.query for r in script.originates()]
    calls, total = journal.list()
    assert total == 1 and calls[0]["origin"] == "webrtc"


def test_active_counts_follow_calls_as_they_start_and_end(world):
    """The per-agent and per-token limits read kept counts (no walk over every
    live call): they match the calls not yet ended at every step, and come
    back to zero when every call has ended, whichever way it ended."""
    script, engine, stasis, _ = world

    def walked(agent=None, token=None):
        return sum(1 for c in engine.calls.values() if not c.ended
                   and (agent is None or c.agent == agent) and (token is None or c.token_name == token))

    def same():
        for agent in ("1001", "1002"):
            assert engine.active_for_agent(agent) == walked(agent=agent)
        for token in ("crm", "dialer"):
            assert engine.active_calls(token) == walked(token=token)
        assert engine.active_calls() == walked()

    async def go():
        calls = []
        for i, (agent, token) in enumerate([("1001", "crm"), ("1001", "dialer"), ("1002", "crm")]):
            calls.append(await engine.start_rest_call(
                validate_call_request({**BODY, "agent": agent, "call_ref": f"n{i}"}), "0215550199",
                token_name=token))
            same()
        assert (engine.active_for_agent("1001"), engine.active_calls("crm"), engine.active_calls()) == (2, 2, 3)
        await engine.cancel(calls[0])
        same()
        agent = calls[1].agent_leg.channel_id
        await stasis.on_event(ev("ChannelDestroyed", agent, cause=17))   # the agent was busy
        same()
        await engine.cancel(calls[2])
        await engine.cancel(calls[2])                                    # twice changes nothing
        same()
        return engine.active_calls(), engine.active_for_agent("1001"), engine.active_calls("crm")

    assert script.run(go()) == (0, 0, 0)


def test_the_event_filter_sent_to_asterisk_names_the_events_the_app_routes(world):
    """One table (calls/stasis.py ROUTES) is both what Asterisk is asked to send and
    what the app handles: no event is asked for and dropped, none handled and never sent."""
    from platforma_c2d.calls.stasis import ROUTES

    script, _, stasis, _ = world
    script.run(stasis.filter_events())
    (put,) = script.sent("PUT", "/ari/applications/click2dial/eventFilter")
    assert put.body == {"allowed": [{"type": cls.__name__} for cls in ROUTES]}
    assert {t["type"] for t in put.body["allowed"]} >= {"StasisStart", "ChannelDestroyed", "Dial"}


def test_a_local_leg_ends_with_the_cause_of_the_channel_its_dial_reached_even_when_told_last(world):
    """A callee leg is a Local channel whose dialplan half dials the trunk (ADR 0014):
    Asterisk cuts the trunk's channel for its rtp_timeout (cause 44) while the leg
    itself says 16, and the trunk channel's ChannelDestroyed, from a thread of its
    own in Asterisk, can come after the leg's. The call still ends as Asterisk cut
    it: ``failed`` by the ``system``, cause 44, not ``completed`` by the callee."""
    script, engine, stasis, journal = world
    script.answers[("GET", "/ari/asterisk/config/dynamic/res_pjsip/endpoint/trunk")] = [
        {"attribute": "rtp_timeout", "value": "6"}, {"attribute": "rtp_timeout_hold", "value": "0"}]

    async def go():
        call = await engine.start_rest_call(validate_call_request(BODY), "0215550199")
        agent, callee = call.agent_leg.channel_id, f"c2d-{call.id}-callee"
        await stasis.on_event(ev("StasisStart", agent, "Up"))
        # The leg's ;2 reports that the trunk's channel answered its Dial().
        await stasis.on_event({"type": "Dial", "dialstatus": "ANSWER",
                               "caller": {"id": callee + "-dial", "name": "Local/0215550100@c2d-trunk-leg-1;2"},
                               "peer": {"id": "1765100000.7", "name": "PJSIP/trunk-00000007", "state": "Up"}})
        await stasis.on_event(ev("StasisStart", callee, "Up"))
        await stasis.dispatch(ev("ChannelHangupRequest", callee, cause=16))
        await stasis.dispatch(ev("ChannelDestroyed", callee, cause=16))
        await asyncio.sleep(0.2)
        assert not call.ended   # waits for the trunk's channel
        await stasis.dispatch(ev("ChannelDestroyed", "1765100000.7", cause=44))
        for _ in range(100):
            if journal.get(call.id)["state"] == "ended":
                break
            await asyncio.sleep(0.02)
        return call

    call = script.run(go())
    (subscribe,) = script.sent("POST", "/ari/applications/click2dial/subscription")
    assert subscribe.query == {"eventSource": "channel:1765100000.7"}
    row = journal.get(call.id)
    assert (row["reason"], row["ended_by"], row["cause"]) == ("failed", "system", 44), row
    assert engine.far_ends._by_far == {} and engine.far_ends._by_leg == {}


def test_a_soft_hangup_requests_cause_is_not_taken_for_a_q850_cause(world):
    """ChannelHangupRequest of a soft hangup carries Asterisk's reason for it (1: a
    channel driver's, such as an RTP timeout) in ``cause``: the leg's cause is
    then the one it is destroyed with (44), not 1."""
    script, engine, stasis, journal = world

    async def go():
        call = await engine.start_rest_call(validate_call_request(BODY), "0215550199")
        agent, callee = call.agent_leg.channel_id, f"c2d-{call.id}-callee"
        await stasis.on_event(ev("StasisStart", agent, "Up"))
        await stasis.on_event(ev("StasisStart", callee, "Up"))
        await stasis.on_event(ev("ChannelHangupRequest", callee, cause=1, soft=True))
        await stasis.on_event(ev("ChannelDestroyed", callee, cause=44))
        return call

    call = script.run(go())
    row = journal.get(call.id)
    assert (row["reason"], row["ended_by"], row["cause"]) == ("failed", "system", 44), row


def test_a_callee_gone_before_the_bridge_ends_the_call_by_their_hangup(world):
    """The callee answers and hangs up at once: ARI refuses to bridge a channel that has
    left the app (400), and that leg's ChannelDestroyed, queued behind, decides:
    ``completed`` by the ``callee``, not ``failed`` "bridge failed (400)"."""
    script, engine, stasis, journal = world
    script.status[("POST", "/ari/bridges/")] = lambda sent: 400 if sent.path.endswith("/addChannel") else None

    async def go():
        call = await engine.start_rest_call(validate_call_request(BODY), "0215550199")
        agent, callee = call.agent_leg.channel_id, f"c2d-{call.id}-callee"
        await stasis.on_event(ev("StasisStart", agent, "Up"))
        await stasis.on_event(ev("StasisStart", callee, "Up"))
        assert not call.ended
        await stasis.on_event(ev("ChannelDestroyed", callee, cause=16))
        return call

    call = script.run(go())
    assert script.sent("POST", f"/ari/bridges/c2d-{call.id}/addChannel")
    row = journal.get(call.id)
    assert (row["reason"], row["ended_by"]) == ("completed", "callee"), row
    assert not [e for e in journal.events(call.id) if "bridge failed" in (e["detail"] or "")]
