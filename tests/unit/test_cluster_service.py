"""The API of a cluster instance (SPEC §11), without Asterisk: a standby's
answers through the Flask app, where each placement and cancellation is
sent, and API errors carried between instances unchanged."""

from __future__ import annotations

import pytest

from platforma_c2d.calls import errors
from platforma_c2d.calls.model import Call, EndedBy, Origin, Reason
from platforma_c2d.calls.service import Caller
from platforma_c2d.calls.placing import load_place_request
from platforma_c2d.cluster.commands import error_from_dict, error_to_dict
from platforma_c2d.config import loads_config
from platforma_c2d.http import create_app
from platforma_c2d.runtime import Runtime

BODY = {"agent": "2001", "callee": "0215550100", "outbound_id": "0215550199", "call_ref": "r-1"}


@pytest.fixture
def runtime(postgres_server):
    url = postgres_server.new_database("svc")
    cfg = loads_config(f'[store]\nurl = "{url}"\n[ari]\nurl = "http://127.0.0.1:9"\n'
                       '[cluster]\nnode = "a"\ninstance = "a1"\nrules = ["1*=a", "2*=b"]\n', env={})
    rt = Runtime(cfg)       # not started: a standby that never takes its node's lock
    yield rt
    rt.stop()


class RecordingBus:
    """Stands for the other instances: records what is sent, answers ``answer``."""

    def __init__(self, answer):
        self.sent, self.answer = [], answer

    def send(self, node, kind, payload):
        self.sent.append((node, kind, payload))
        return self.answer


def test_a_standby_answers_503_naming_the_node_without_an_active_instance(runtime):
    client = create_app(runtime.service, runtime.config, runtime.metrics).test_client()
    for agent, node in (("2001", "b"), ("1001", "a")):      # another node, and its own (it is a standby)
        r = client.post("/click2dial/calls", json={**BODY, "agent": agent})
        assert r.status_code == 503, r.get_json()
        assert r.get_json()["error"] == "asterisk-unavailable" and r.get_json()["details"] == {"node": node}
        assert r.headers["Retry-After"]
    r = client.post("/click2dial/calls", json={**BODY, "agent": "3001"})
    assert r.status_code == 400 and r.get_json()["details"]["fields"] == {"agent": "no node serves this agent"}
    r = client.post("/click2dial/calls", json={**BODY, "callee": "12"})
    assert r.status_code == 400 and "callee" in r.get_json()["details"]["fields"]
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.get_json()["cluster"] == {"node": "a", "instance": "a1", "role": "standby"}
    assert 'c2d_cluster_active{instance="a1",node="a"} 0.0' in client.get("/metrics").get_data(as_text=True)


def test_placements_and_cancellations_go_to_the_call_s_node(runtime):
    service = runtime.service
    placed = {**BODY, "id": "c" * 32}
    service.bus = RecordingBus({"call": placed, "replayed": True})
    call, replayed = service.place_call(load_place_request(BODY, ()), idempotency_key="k-1")
    assert (call, replayed) == (placed, True)
    assert service.bus.sent == [("b", "place", {"body": BODY, "caller": {"name": "", "agents": ()},
                                                "key": "k-1"})]
    # A call journalled open by node b's instance: its DELETE goes to node b.
    journal_b = type(runtime.journal)(runtime.config.store.url, node="b")
    open_call = Call(id="d" * 32, origin=Origin.REST, agent="2001", callee="0215550100", outbound_id="0215550199",
                     clid="0215550199", call_ref="r-2")
    journal_b.record(open_call, "placed on node b")
    service.bus = RecordingBus({"call": {"id": open_call.id, "state": "ended"}})
    assert service.cancel_call(open_call.id)["state"] == "ended"
    assert service.bus.sent == [("b", "cancel", {"id": open_call.id, "caller": {"name": "", "agents": ()}})]
    # An ended call is answered from the journal, whatever its node.
    open_call.end(Reason.COMPLETED, EndedBy.CALLEE)
    journal_b.record(open_call, "ended")
    service.bus = RecordingBus(None)
    assert service.cancel_call(open_call.id)["reason"] == "completed" and service.bus.sent == []
    journal_b.close()


def _all_errors(cls=errors.C2DError):
    yield cls
    for sub in cls.__subclasses__():
        yield from _all_errors(sub)


@pytest.mark.parametrize("cls", sorted(set(_all_errors()), key=lambda c: c.error), ids=lambda c: c.error)
def test_every_api_error_crosses_to_another_instance_unchanged(cls):
    exc = cls.__new__(cls)
    errors.C2DError.__init__(exc, "why, in words", {"fields": {"agent": "bad"}}, {"Retry-After": "3"})
    back = error_from_dict(error_to_dict(exc))
    assert type(back) is cls and back.status == cls.status and back.error == cls.error
    assert (back.message, back.details, back.headers) == ("why, in words", {"fields": {"agent": "bad"}},
                                                          {"Retry-After": "3"})


def test_call_caps_count_the_calls_of_every_node(postgres_server):
    url = postgres_server.new_database("caps")
    cfg = loads_config(f'[store]\nurl = "{url}"\n[ari]\nurl = "http://127.0.0.1:9"\n'
                       '[cluster]\nnode = "a"\nrules = ["1*=a", "2*=b"]\n'
                       '[limits]\nmax_active_calls = 3\nmax_active_calls_per_token = 2\n', env={})
    rt = Runtime(cfg)
    try:
        rt.service.bus = RecordingBus({"call": {}, "replayed": False})
        journals = {n: type(rt.journal)(url, node=n) for n in ("a", "b")}
        for i, (node, token, origin) in enumerate((("a", "crm", Origin.REST), ("b", "crm", Origin.WEBRTC),
                                                   ("b", "other", Origin.AGI))):
            call = Call(id=f"{i:032x}", origin=origin, agent="2001", callee="0215550100",
                        outbound_id="0215550199", clid="0215550199", call_ref="", token_name=token)
            journals[node].record(call, "up")
        rt.service.role = lambda: "active"     # node a's active instance, placing for agent 1001
        with pytest.raises(errors.TooManyCalls) as err:
            rt.service.place_call(load_place_request({**BODY, "agent": "1001"}, ()), Caller("crm"))
        assert err.value.details == {"scope": "token", "max_active_calls": 2}
        with pytest.raises(errors.TooManyCalls):        # the same, as a command from another instance
            rt.service.run_command("place", {"body": {**BODY, "agent": "1001"}, "key": None,
                                             "caller": {"name": "crm", "agents": []}})
        journals["a"].record(Call(id="f" * 32, origin=Origin.REST, agent="1003", callee="0215550100",
                                  outbound_id="0215550199", clid="0215550199", call_ref="",
                                  token_name="third"), "up")
        with pytest.raises(errors.TooManyCalls) as err:   # three REST and browser calls in the cluster
            rt.service.place_call(load_place_request({**BODY, "agent": "1001"}, ()), Caller("other"))
        assert err.value.details == {"scope": "service", "max_active_calls": 3}
        for journal in journals.values():
            journal.close()
    finally:
        rt.stop()
