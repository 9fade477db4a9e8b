"""``check`` reading the dialplan (config/dialplan_check.py): the parsing and
the judgement, on ``dialplan show`` output as Asterisk 22 prints it. The
same check against the real Asterisk: tests/integration/test_check_dialplan.py."""

from __future__ import annotations

import pytest

from platforma_c2d.config.dialplan_check import Route, first_extension, judge, route_of

OURS = """\
[ Included context 'c2d-webrtc' created by 'pbx_config' ]
  '_X.' =>          1. GotoIf($[${LEN(${FILTER(0-9a-zA-Z*#+._,${EXTEN})})} != ${LEN(${EXTEN})}]?c2d-undialable,s,1) [extensions.conf:90]
                    2. Gosub(c2d-is-click2dial,${EXTEN},1)        [extensions.conf:91]
                    3. GotoIf($["${GOSUB_RETVAL}" = "1"]?c2d)     [extensions.conf:92]
                    4. Goto(${C2D_PBX_CONTEXT},${EXTEN},1)        [extensions.conf:93]
     [c2d]          5. NoOp(Click2Dial: ${CHANNEL(endpoint)} dials ${EXTEN}) [extensions.conf:94]
                    6. Stasis(${C2D_APP})                         [extensions.conf:95]
                    7. GotoIf($["${STASISSTATUS}" = "FAILED"]?app_down) [extensions.conf:97]
                    8. Hangup()                                   [extensions.conf:98]

-= 1 extension (10 priorities) in 1 context. =-
"""
AGI = """\
[ Context 'c2d-agi' created by 'pbx_config' ]
  '_0XXXXXXXXX' =>  1. Goto(c2d-agi-call,${EXTEN},1)              [extensions.conf:150]
  '_XXXXXXXXXX' =>  1. Goto(${C2D_PBX_CONTEXT},${EXTEN},1)        [extensions.conf:169]

-= 2 extensions (2 priorities) in 1 context. =-
"""
AGI_CALL = """\
[ Context 'c2d-agi-call' created by 'pbx_config' ]
  '_X.' =>          1. NoOp(Click2Dial (AGI): ${CHANNEL(endpoint)} dials ${EXTEN}) [extensions.conf:180]
                    2. Set(CHANNEL(hangup_handler_push)=c2d-agi-hangup,s,1) [extensions.conf:183]
                    3. AGI(${C2D_AGI})                             [extensions.conf:187]
"""
OWN_CATCH_ALL = """\
[ Context 'from-internal' created by 'pbx_config' ]
  '_X.' =>          1. Dial(PJSIP/${EXTEN}@trunk,30)              [extensions.conf:12]
                    2. Hangup()                                   [extensions.conf:13]

[ Included context 'c2d-webrtc' created by 'pbx_config' ]
  '_X.' =>          1. Stasis(click2dial)                         [extensions.conf:30]
"""
MISSING = "There is no existence of 'c2d-agents' context\nCommand 'dialplan show 0115550100@c2d-agents' failed.\n"
GLOBALS = {"C2D_APP": "click2dial", "C2D_PBX_CONTEXT": "c2d-no-route"}


def show_from(outputs: dict[str, str]):
    def show(cmd: str) -> str:
        ctx = cmd.rsplit("@", 1)[1]
        return outputs.get(ctx, f"There is no existence of '{ctx}' context\n")
    return show


def route(ctx, outputs, globals_=GLOBALS):
    return route_of(ctx, "0115550100", show_from(outputs), lambda n: globals_.get(n, ""))


def test_the_first_extension_is_read_with_its_labelled_priorities():
    apps = [app for app, _ in first_extension(OURS)]
    assert apps == ["GotoIf", "Gosub", "GotoIf", "Goto", "NoOp", "Stasis", "GotoIf", "Hangup"]
    assert first_extension(AGI) == [("Goto", "c2d-agi-call,${EXTEN},1")]
    assert first_extension(MISSING) == []


def test_our_contexts_reach_stasis_with_the_global_app_name():
    ours = route("c2d-agents", {"c2d-agents": OURS})
    assert (ours.kind, ours.app) == ("stasis", "click2dial")
    other = route("c2d-agents", {"c2d-agents": OURS}, {**GLOBALS, "C2D_APP": "crm-dialer"})
    assert (other.kind, other.app) == ("stasis", "crm-dialer")


def test_the_agi_context_reaches_the_agi_through_its_goto():
    assert route("c2d-agi", {"c2d-agi": AGI, "c2d-agi-call": AGI_CALL}).kind == "agi"


def test_an_own_catch_all_before_the_include_never_reaches_stasis():
    r = route("from-internal", {"from-internal": OWN_CATCH_ALL})
    assert (r.kind, r.apps) == ("none", ["Dial", "Hangup"])


def test_a_missing_context_says_so():
    r = route("c2d-agents", {})
    assert r.kind == "missing" and "context c2d-agents does not exist" in r.why


@pytest.mark.parametrize("routes,agents,expect", [
    ({"c2d-agents": Route("stasis", app="click2dial")}, {"1001": "c2d-agents"},
     [("ok", "dialplan: calls to customers from context c2d-agents (1001) reach Stasis(click2dial)")]),
    ({"c2d-agents": Route("stasis", app="other")}, {}, ["FAIL Stasis(other), but [ari] app is click2dial"]),
    ({"from-internal": Route("none", apps=["Dial", "Hangup"])}, {"1001": "from-internal"},
     ["FAIL agent 1001 (context from-internal)", "it runs Dial, Hangup"]),
    ({"from-internal": Route("none", apps=["Dial"])}, {},
     ["FAIL no phone's context hands a call to a customer's number"]),
    ({"c2d-agents": Route("missing", why="context c2d-agents does not exist in the dialplan")}, {},
     ["FAIL context c2d-agents does not exist in the dialplan"]),
    ({"c2d-agents": Route("stasis", app="click2dial"), "from-internal": Route("none")}, {},
     [("ok", "dialplan: calls to customers from context c2d-agents (1001) reach Stasis(click2dial)")]),
])
def test_judge(routes, agents, expect):
    contexts = {"c2d-agents": ["1001"], "from-internal": ["1001"]}
    lines = judge(contexts, agents, "click2dial", routes)
    if isinstance(expect[0], tuple):
        assert lines == expect
        return
    level, text = expect[0].split(" ", 1)
    fails = [line for lvl, line in lines if lvl == "FAIL"]
    assert level == "FAIL" and len(fails) == 1, lines
    for part in [text, *expect[1:]]:
        assert part in fails[0], fails[0]


TRUNK_LEG = """\
[ Context 'c2d-trunk-leg' created by 'pbx_config' ]
  '_X.' =>          1. Set(CDR(call_ref)=${C2D_LEG_CALL_REF})       [extensions.conf:211]
                    6. Dial(${C2D_LEG_DIAL},${C2D_LEG_TIMEOUT})    [extensions.conf:216]
"""


def test_the_trunk_leg_context_must_exist_and_dial():
    from platforma_c2d.config.dialplan_check import trunk_leg_line

    assert trunk_leg_line("", show_from({})) == []
    [(level, line)] = trunk_leg_line("c2d-trunk-leg", show_from({"c2d-trunk-leg": TRUNK_LEG}))
    assert level == "ok" and "dialled from context c2d-trunk-leg" in line
    [(level, line)] = trunk_leg_line("c2d-trunk-leg", show_from({}))
    assert level == "FAIL" and "context c2d-trunk-leg of [dial] trunk_leg_context does not exist" in line


AGENT_LEG = """\
[ Context 'c2d-agent-leg' created by 'pbx_config' ]
  '_X.' =>          1. Set(CDR(call_ref)=${C2D_LEG_CALL_REF})       [extensions.conf:279]
                    6. Dial(${C2D_LEG_DIAL},${C2D_LEG_TIMEOUT},b(c2d-agent-leg^phone^1(${C2D_LEG_SHOW}))) [extensions.conf:284]
"""


def test_the_agent_leg_context_must_exist_and_dial():
    from platforma_c2d.config.dialplan_check import trunk_leg_line

    key = "agent_leg_context"
    assert trunk_leg_line("", show_from({}), key=key) == []
    [(level, line)] = trunk_leg_line("c2d-agent-leg", show_from({"c2d-agent-leg": AGENT_LEG}), key=key)
    assert level == "ok" and "agent legs are dialled from context c2d-agent-leg" in line
    [(level, line)] = trunk_leg_line("c2d-agent-leg", show_from({}), key=key)
    assert level == "FAIL" and "context c2d-agent-leg of [dial] agent_leg_context does not exist" in line
    assert "merge [c2d-agent-leg]" in line
