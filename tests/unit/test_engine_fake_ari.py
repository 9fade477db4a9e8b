"""The engine against a scripted ARI (httpx transport), for the orderings a
real Asterisk produces only sometimes: field reports C01, C02, C04, C07, C09, C10.

The AriClient, engine, Stasis router and journal are the real ones; only the
HTTP transport to Asterisk is replaced by a script that records every request
and can deliver events *before* it answers.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from platforma_c2d.ari.client import AriClient
from platforma_c2d.calls.engine import CallEngine
from platforma_c2d.calls.policy import Policy
from platforma_c2d.calls.stasis import StasisApp
from platforma_c2d.config import ClidConfig, DialConfig, PolicyConfig
from platforma_c2d.metrics import Metrics
from platforma_c2d.rules import validate_call_request
from platforma_c2d.store.journal import Journal

BODY = {"agent": "1001", "callee": "0215550100", "outbound_id": "0215550199", "call_ref": "ord-42"}


class ScriptedAri:
    """Records requests; ``before_reply[(method, path_prefix)]`` runs (async) before answering."""

    def __init__(self):
        self.requests: list[httpx.Request] = []
        self.before_reply: dict = {}
        self.status: dict = {}

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for (method, prefix), hook in list(self.before_reply.items()):
            if request.method == method and request.url.path.startswith(prefix):
                await hook(request)
        for (method, prefix), code in self.status.items():
            if request.method == method and request.url.path.startswith(prefix):
                return httpx.Response(code, json={"message": "scripted"})
        return httpx.Response(200, json={"id": request.url.params.get("channelId", "x")})

    def sent(self, method: str, prefix: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path.startswith(prefix)]

    def originates(self) -> list[httpx.Request]:
        """``POST /ari/channels`` requests (legs originated)."""
        return [r for r in self.requests if r.method == "POST" and r.url.path == "/ari/channels"]


@pytest.fixture
def world(tmp_path):
    script = ScriptedAri()
    ari = AriClient("http://asterisk.invalid:8088", "c2d", "pw", "click2dial")
    ari._http = httpx.AsyncClient(base_url="http://asterisk.invalid:8088/ari",
                                  transport=httpx.MockTransport(script.handle))
    journal = Journal(f"sqlite:///{tmp_path}/calls.sqlite3")
    dial = DialConfig(agent_ring_timeout_s=1, callee_ring_timeout_s=1, tone_s=0)
    engine = CallEngine(ari, journal, dial, Metrics())
    stasis = StasisApp(engine, ari, ClidConfig(), Policy(ClidConfig(), PolicyConfig()))
    yield script, engine, stasis, journal
    journal.close()


def ev(kind: str, channel_id: str, state: str = "Down", **extra) -> dict:
    return {"type": kind, "channel": {"id": channel_id, "name": "PJSIP/x-0001", "state": state}, **extra}


def run(coro):
    return asyncio.run(coro)


def test_c10_leg_variables_travel_in_the_json_body(world):
    script, engine, _, _ = world

    async def go():
        return await engine.start_rest_call(validate_call_request(BODY), "0215550199")

    call = run(go())
    (post,) = script.originates()
    body = json.loads(post.content)
    assert set(body) == {"variables"}
    assert body["variables"]["CDR(call_ref)"] == "ord-42"
    assert body["variables"]["CDR(c2d_call_id)"] == call.id
    assert body["variables"]["CONNECTEDLINE(num)"] == "0215550100"
    params = dict(post.url.params)
    assert params["channelId"] == f"c2d-{call.id}-agent" and params["app"] == "click2dial"
    assert params["endpoint"] == "PJSIP/1001"
    assert not any(k.startswith(("CDR", "CALLERID", "variables")) for k in params)


def test_c01_stasis_start_before_the_originate_answer_is_not_lost(world):
    script, engine, stasis, journal = world

    async def early_start(request):
        cid = request.url.params.get("channelId", "")
        if request.url.path == "/ari/channels" and cid.endswith("-agent"):
            await stasis.on_event(ev("StasisStart", cid, "Up"))

    script.before_reply[("POST", "/ari/channels")] = early_start

    async def go():
        call = await engine.start_rest_call(validate_call_request(BODY), "0215550199")
        return call

    call = run(go())
    # The early StasisStart (agent answered) was matched: the callee was dialled.
    posts = [r.url.params["channelId"] for r in script.originates()]
    assert posts == [f"c2d-{call.id}-agent", f"c2d-{call.id}-callee"]
    assert journal.get(call.id)["state"] == "dialing_callee"
    assert not script.sent("DELETE", "/ari/channels")  # no "unknown channel" hangup


def test_c01_failed_originate_ends_the_pre_registered_call(world):
    script, engine, _, journal = world
    script.status[("POST", "/ari/channels")] = 500

    call = run(engine.start_rest_call(validate_call_request(BODY), "0215550199"))
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

    call, before = run(go())
    assert before == 1  # only the originate
    assert script.originates()[-1].url.params["channelId"] == f"c2d-{call.id}-callee"


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

    call = run(go())
    assert len(script.originates()) == 2
    assert len([r for r in script.requests if r.method == "POST" and r.url.path == f"/ari/bridges/c2d-{call.id}"]) == 1
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

    call = run(go())
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

    call = run(go())
    hangups = script.sent("DELETE", f"/ari/channels/c2d-{call.id}-agent")
    assert hangups and hangups[0].url.params["reason_code"] == "19"
    row = journal.get(call.id)
    assert row["reason"] == "agent_no_answer" and row["call_ref"] == "t-noans"
    assert len(script.originates()) == 1  # the callee was never dialled
