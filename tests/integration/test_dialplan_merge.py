"""Click2Dial merged into an administrator's own dialplan (docs/configuration.md,
"Merging into your dialplan").

The administrator's PBX has its own context ``from-internal`` where the
colleagues' extensions live (``2002``: a SIPp UAS on 127.0.0.1:5082). The
merge follows the recipe: our contexts are ``#include``d from the PBX's
``extensions.conf``, the agent phones keep ``context=c2d-agents`` and
``C2D_PBX_CONTEXT`` names ``from-internal``. A colleague call must reach the
colleague's phone and never the app; a customer's number must still enter
Stasis. Without the recipe (the shipped default, a PBX that does only
Click2Dial) a colleague call is refused with 404 and nothing is journalled.
"""

from __future__ import annotations

import time

import pytest

from testbed.asterisk import CONF_DIR
from testbed.sipmessages import sip_user
from testbed.sipp import uac_scenario, uas_scenario
from tests.integration.test_webrtc_headers import final_response

AGENT, AGENT_PORT = "1001", 5071
COLLEAGUE, COLLEAGUE_PORT = "2002", 5082
AGI_PHONE, AGI_PHONE_PORT = "3001", 5091
TRUNK_PORT = 5070

# The administrator's extensions.conf: their own [globals] and contexts, and
# ours pulled in by one #include, as the recipe says.
ADMIN_EXTENSIONS = """\
[general]
static=yes
writeprotect=yes
clearglobalvars=no

[globals]
C2D_APP=click2dial
C2D_AGI=agi://127.0.0.1:4573/click2dial
C2D_AGI_HANGUP=agi://127.0.0.1:4573/click2dial-hangup
C2D_PBX_CONTEXT=from-internal

; The PBX's own routes: colleagues by extension, a feature code.
[from-internal]
exten => _2XXX,1,Dial(PJSIP/${EXTEN},20)
 same => n,Hangup()
exten => *43,1,Answer()
 same => n,Hangup()
; A feature code guarded at priority 1 (a PIN prompt, say): only its own
; priority 1 may lead to the rest.
exten => *44,1,Hangup(21)
 same => n,Answer()
 same => n,Hangup()

#include extensions_c2d.conf
"""

# The colleague's phone, an endpoint of the administrator's own kind.
ADMIN_PJSIP = """
[2002]
type=endpoint
context=from-internal
disallow=all
allow=ulaw
direct_media=no
aors=2002
[2002]
type=aor
contact=sip:2002@127.0.0.1:5082
[2002]
type=identify
endpoint=2002
match=127.0.0.1:5082
"""


def _click2dial_contexts() -> str:
    """Our extensions.conf without its [general] and [globals] sections."""
    text = (CONF_DIR / "extensions.conf").read_text()
    return text[text.index("[c2d-is-click2dial]"):].replace("#tryinclude extensions_local.conf", "")


@pytest.fixture
def admin_dialplan(asterisk):
    """Load the administrator-style dialplan into the running Asterisk; restore it after."""
    etc = asterisk.root / "etc/asterisk"
    saved = {name: (etc / name).read_text() for name in ("extensions.conf", "pjsip_site.conf")}
    (etc / "extensions_c2d.conf").write_text(_click2dial_contexts())
    (etc / "extensions.conf").write_text(ADMIN_EXTENSIONS)
    (etc / "pjsip_site.conf").write_text(saved["pjsip_site.conf"] + ADMIN_PJSIP)
    try:
        asterisk.cli("module reload res_pjsip.so")
        asterisk.cli("dialplan reload")
        yield asterisk
    finally:
        for name, text in saved.items():
            (etc / name).write_text(text)
        (etc / "extensions_c2d.conf").unlink(missing_ok=True)
        asterisk.cli("module reload res_pjsip.so")
        asterisk.cli("dialplan reload")


def phone_dials(sipp, user, port, target, headers=(), **kw):
    """The phone of endpoint ``user`` (a SIPp UAC on ``port``) calls ``target``."""
    scenario = uac_scenario(target=target, from_user=user, headers=list(headers), **kw)
    return sipp(f"phone{user}", port, scenario, uac_target="127.0.0.1:5060", calls=1)


def metric_values(service) -> dict[tuple, float]:
    """``GET /metrics`` as {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    text = service.http.get("/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def journal_calls(service) -> list[dict]:
    """Every call the service journalled."""
    return service.http.get("/click2dial/calls").json()["calls"]


def test_a_colleague_call_reaches_the_colleague_through_the_pbx_own_route(admin_dialplan, service, sipp):
    colleague = sipp("colleague", COLLEAGUE_PORT, uas_scenario(ring_ms=200))
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = phone_dials(sipp, AGENT, AGENT_PORT, COLLEAGUE, talk_ms=500)
    assert final_response(phone) == 200
    invite = colleague.received("INVITE")
    assert invite and invite[0].first_line.startswith(f"INVITE sip:{COLLEAGUE}@"), colleague.messages()
    assert sip_user(invite[0].header("From")[0]) == AGENT
    assert phone.wait(timeout=20) == 0
    assert trunk.received() == []
    assert journal_calls(service) == []


def test_a_feature_code_reaches_the_pbx_own_route(admin_dialplan, service, sipp):
    phone = phone_dials(sipp, AGENT, AGENT_PORT, "*43", talk_ms=200)
    assert final_response(phone) == 200
    assert phone.wait(timeout=20) == 0
    assert journal_calls(service) == []


@pytest.mark.parametrize("target", ["*44,2", "*44%2C2"], ids=["comma", "encoded-comma"])
def test_a_comma_in_the_dialled_number_cannot_jump_past_a_pbx_route_guard(admin_dialplan, service, sipp,
                                                                          target):
    # Goto(from-internal,*44,2,1) would start the route at priority 2, past its guard.
    phone = phone_dials(sipp, AGENT, AGENT_PORT, target, talk_ms=200)
    assert final_response(phone) == 404
    assert phone.wait(timeout=20) == 0
    assert journal_calls(service) == []


def test_a_customer_number_still_enters_stasis(admin_dialplan, service, sipp):
    trunk = sipp("trunk", TRUNK_PORT, uas_scenario())
    phone = phone_dials(sipp, AGENT, AGENT_PORT, "0215550100", talk_ms=500)
    assert final_response(phone) == 200
    assert trunk.received("INVITE")[0].first_line.startswith("INVITE sip:0215550100@")
    assert phone.wait(timeout=20) == 0
    calls = journal_calls(service)
    assert len(calls) == 1 and calls[0]["agent"] == AGENT and calls[0]["callee"] == "0215550100"
    assert service.wait_state(calls[0]["id"], "ended")["reason"] == "completed"


def test_a_header_call_to_an_extension_is_still_a_refused_click_to_dial_call(admin_dialplan, service, sipp):
    colleague = sipp("colleague", COLLEAGUE_PORT, uas_scenario())
    phone = phone_dials(sipp, AGENT, AGENT_PORT, COLLEAGUE,
                        headers=["x-platforma-call-ref: ord-7"])
    assert final_response(phone) == 484
    time.sleep(0.3)
    assert colleague.received() == []
    calls = journal_calls(service)
    assert len(calls) == 1 and calls[0]["reason"] == "rejected" and calls[0]["callee"] == COLLEAGUE
    # A refused call is counted started and ended: started - ended = active.
    metrics = metric_values(service)
    assert metrics[("c2d_calls_started_total", (("origin", "webrtc"),))] == 1
    assert metrics[("c2d_calls_total", (("origin", "webrtc"), ("reason", "rejected")))] == 1
    assert metrics[("c2d_calls_active", ())] == 0


@pytest.mark.parametrize("target", ["*43", "+27215550100", "5"], ids=["feature-code", "plus", "one-digit"])
def test_a_header_call_to_a_number_no_callee_pattern_takes_is_refused_not_routed(admin_dialplan, service,
                                                                                 sipp, target):
    """A header makes a call a click-to-dial call whatever was dialled: a feature code of the
    PBX's own route (answered without the header) is refused 484, and journalled."""
    phone = phone_dials(sipp, AGENT, AGENT_PORT, target, headers=["X-Platforma-Call-Ref: ord-8"])
    assert final_response(phone) == 484
    calls = journal_calls(service)
    assert [(c["reason"], c["callee"]) for c in calls] == [("rejected", target)], calls


def test_an_agi_phone_colleague_call_skips_the_agi(admin_dialplan, sipp):
    # No FastAGI server runs: a call that reached AGI() would be refused with 503.
    colleague = sipp("colleague", COLLEAGUE_PORT, uas_scenario())
    phone = phone_dials(sipp, AGI_PHONE, AGI_PHONE_PORT, COLLEAGUE, talk_ms=200)
    assert final_response(phone) == 200
    assert colleague.received("INVITE")
    assert phone.wait(timeout=20) == 0


def test_without_the_recipe_a_colleague_call_is_refused_and_not_journalled(asterisk, service, sipp):
    phone = phone_dials(sipp, AGENT, AGENT_PORT, COLLEAGUE)
    assert final_response(phone) == 404
    assert journal_calls(service) == []
