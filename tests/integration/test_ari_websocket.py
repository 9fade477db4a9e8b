"""ARI requests over the event WebSocket (``[ari] requests = "websocket"``,
docs/decisions/0021) against the real Asterisk.

The service reaches Asterisk through a TCP proxy. Once the service says its
requests go over the socket, the proxy lets only the event WebSocket through
and refuses every HTTP request: a call that still works, with the SIP
messages and CDR rows it should have, made every request on the socket
(with ``requests = "http"`` the same call is refused, the first test shows).
"""

from __future__ import annotations

import time

import pytest

from testbed.proxy import TcpProxy
from testbed.service import free_port
from testbed.sipp import uas_scenario
from tests.integration.test_rest_calls import assert_cdr_tagged, assert_trunk_never_saw
from tests.integration.test_webrtc_headers import OUT, REF, dial, only_call

AGENT_PORT, TRUNK_PORT = 5071, 5070
BODY = {"agent": "1001", "callee": "0215550100", "outbound_id": "0215550199", "call_ref": "ws-1"}
#: What the service logs when the event socket answered its probe request.
ON_SOCKET = "ARI requests go over the event socket"


def wait_on_socket(svc, times: int = 1, timeout: float = 15.0) -> None:
    """Until the service has logged ``times`` times that its requests go over the socket."""
    deadline = time.monotonic() + timeout
    while svc.log_path.read_text(errors="replace").count(ON_SOCKET) < times:
        assert time.monotonic() < deadline, "requests never went over the socket: " + svc.tail_log()
        time.sleep(0.1)


@pytest.fixture
def proxied(asterisk, make_service, request):
    """(proxy, service) with ``requests`` of the test's parameter (default websocket),
    HTTP refused by the proxy once the socket carries the requests."""
    mode = getattr(request, "param", "websocket")
    proxy = TcpProxy(free_port())
    svc = make_service({"ari": {"url": f"http://127.0.0.1:{proxy.port}", "requests": mode,
                                "reconnect_max_backoff_s": 1.0}})
    if mode == "websocket":
        wait_on_socket(svc)
    proxy.refuse_rest(True)
    yield proxy, svc
    proxy.refuse_rest(False)
    proxy.close()


@pytest.mark.parametrize("proxied", ["http"], indirect=True)
def test_with_http_requests_a_call_needs_http(asterisk, proxied, sipp):
    """The proxy's refusal does bite: over HTTP the same call cannot be placed."""
    _, svc = proxied
    agent = sipp("agent", AGENT_PORT, uas_scenario())
    sipp("trunk", TRUNK_PORT, uas_scenario(talk_ms=500))
    r = svc.post_call(BODY)
    assert r.status_code == 201, r.text    # journalled, then its originate failed
    final = svc.wait_state(r.json()["id"], "ended")
    assert (final["reason"], final["ended_by"]) == ("failed", "system"), final
    time.sleep(1)
    assert not agent.received("INVITE")
    assert asterisk.wait_idle() == ([], [])


def test_a_rest_call_over_the_socket(asterisk, proxied, sipp):
    _, svc = proxied
    agent = sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(talk_ms=800))
    r = svc.post_call(BODY)
    assert r.status_code == 201, r.text
    final = svc.wait_state(r.json()["id"], "ended", timeout=20)
    assert (final["reason"], final["ended_by"]) == ("completed", "callee"), final
    assert agent.wait_for(lambda m: m.direction == "received" and m.method == "BYE", timeout=10)
    invite = trunk.wait_for(lambda m: m.direction == "received" and m.method == "INVITE")
    assert "0215550199" in invite[0].header("From")[0]
    assert_trunk_never_saw(trunk, "1001")
    assert_cdr_tagged(asterisk, r.json()["id"], "ws-1")
    assert asterisk.wait_idle() == ([], [])


def test_a_header_call_over_the_socket(asterisk, proxied, sipp):
    """The header path reads the INVITE's headers and sets the CDR variables over the socket."""
    _, svc = proxied
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(talk_ms=800))
    phone = dial(sipp, headers=[f"{OUT}: 0215550199", f"{REF}: ws-header"], wait_bye=True)
    assert phone.wait(timeout=20) == 0 and phone.received("BYE")
    call = only_call(svc)
    final = svc.wait_state(call["id"], "ended")
    assert (final["reason"], final["ended_by"], final["clid"]) == ("completed", "callee", "0215550199"), final
    invite = trunk.wait_for(lambda m: m.direction == "received" and m.method == "INVITE")
    assert "0215550199" in invite[0].header("From")[0]
    assert_cdr_tagged(asterisk, call["id"], "ws-header")
    assert asterisk.wait_idle() == ([], [])


def test_a_cancel_over_the_socket(asterisk, proxied, sipp):
    _, svc = proxied
    agent = sipp("agent", AGENT_PORT, uas_scenario())
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario(answer=False))
    call = svc.post_call(BODY).json()
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "INVITE", timeout=10)
    r = svc.http.delete(f"/click2dial/calls/{call['id']}")
    assert r.status_code == 200, r.text
    ended = svc.wait_state(call["id"], "ended")
    assert (ended["reason"], ended["ended_by"]) == ("cancelled", "api"), ended
    assert trunk.wait_for(lambda m: m.direction == "received" and m.method == "CANCEL", timeout=10)
    assert agent.wait_for(lambda m: m.direction == "received" and m.method == "BYE", timeout=10)
    assert asterisk.wait_idle() == ([], [])


def test_after_a_reconnect_the_requests_go_over_the_new_socket(asterisk, proxied, sipp):
    """The socket is cut: after the reconnect (its reconcile over HTTP) the requests
    go over the new socket again."""
    proxy, svc = proxied
    proxy.refuse_rest(False)        # the reconnect's reconcile is made over HTTP
    proxy.cut(1.5)
    wait_on_socket(svc, times=2, timeout=20)
    proxy.refuse_rest(True)
    sipp("agent", AGENT_PORT, uas_scenario())
    sipp("trunk", TRUNK_PORT, uas_scenario(talk_ms=500))
    r = svc.post_call(BODY)
    assert r.status_code == 201, r.text
    final = svc.wait_state(r.json()["id"], "ended", timeout=20)
    assert (final["reason"], final["ended_by"]) == ("completed", "callee"), final
    assert asterisk.wait_idle() == ([], [])
