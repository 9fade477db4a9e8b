"""The ARI floor's variants (bench/floor.py ``local``, bench/native.py) and their report
(bench/floors.py): the requests each design makes, and what the followed events tell."""

from __future__ import annotations

import pytest

from bench.floor import local_legs
from bench.floors import check_variants, render_floors
from bench.native import CONTEXT, call_of, native_agent_leg, step_of
from bench.run import main
from platforma_c2d.calls import legs


def test_local_variant_originates_the_legs_the_service_originates():
    agent, callee = local_legs("floor00000001", "1001", "0200000001", "0215550199", "app-x")
    assert agent["params"]["endpoint"] == "Local/0200000001@c2d-agent-leg/n"
    assert agent["params"]["channelId"] == legs.agent_channel_id("floor00000001")
    assert agent["params"]["otherChannelId"] == legs.dial_half_id(agent["params"]["channelId"])
    assert callee["params"]["endpoint"] == "Local/0200000001@c2d-trunk-leg/n"
    assert callee["params"]["originator"] == agent["params"]["channelId"]
    assert agent["params"]["app"] == callee["params"]["app"] == "app-x"
    cv = callee["json_body"]["variables"]
    # the trunk leg presents the CLID and keeps it through the two-party bridge (decision 0015)
    assert cv["CALLERID(num)"] == "0215550199" and cv["C2D_LEG_DIAL"] == "PJSIP/0200000001@trunk"
    assert cv["CONNECTED_LINE_SEND_SUB"] == "c2d-connected-line,s,1"
    assert agent["json_body"]["variables"]["C2D_LEG_SHOW"] == "0200000001"


def test_native_agent_leg_goes_into_the_dialplan_not_into_an_app():
    req = native_agent_leg("native00000001", "1001", "0200000001", "0215550199")
    assert "app" not in req["params"]
    assert (req["params"]["context"], req["params"]["extension"]) == (CONTEXT, "0200000001")
    v = req["json_body"]["variables"]
    assert v["C2D_CLID"] == "0215550199" and v["CONNECTEDLINE(num)"] == "0200000001"
    assert v["CDR(call_ref)"] == "bench-0200000001"


AGENT = {"id": "native00000007-agent"}
CALLEE = {"id": "1796664994.1"}


@pytest.mark.parametrize("ev, step", [
    ({"type": "Dial", "peer": AGENT, "dialstatus": "RINGING"}, "agent_ringing"),
    ({"type": "Dial", "peer": AGENT, "dialstatus": "ANSWER"}, "agent_up"),
    ({"type": "Dial", "peer": AGENT, "dialstatus": "NOANSWER"}, "agent_failed"),
    ({"type": "Dial", "caller": AGENT, "peer": CALLEE, "dialstatus": ""}, "callee_dialled"),
    ({"type": "Dial", "caller": AGENT, "peer": CALLEE, "dialstatus": "ANSWER"}, "callee_answered"),
    ({"type": "Dial", "caller": AGENT, "peer": CALLEE, "dialstatus": "BUSY"}, "callee_failed"),
    ({"type": "Dial", "caller": AGENT, "peer": CALLEE, "dialstatus": "PROGRESS"}, None),
    ({"type": "ChannelUserevent", "channel": AGENT, "eventname": "c2d-leg"}, "sip_code"),
    ({"type": "ChannelUserevent", "channel": AGENT, "eventname": "other"}, None),
    ({"type": "ChannelDestroyed", "channel": AGENT, "cause": 16}, "ended"),
    ({"type": "ChannelVarset", "channel": AGENT}, None),
])
def test_a_followed_leg_event_tells_the_journal_step(ev, step):
    assert step_of(ev) == step
    assert call_of(ev) == "native00000007"


def test_an_event_of_no_agent_leg_belongs_to_no_call():
    assert call_of({"type": "Dial", "peer": CALLEE}) is None


def test_floor_variants_are_checked_before_anything_starts(capsys):
    assert check_variants(["native", "local"]) == ["native", "local"]
    for bad in (["remote"], ["local", "local"]):
        with pytest.raises(ValueError):
            check_variants(bad)
    with pytest.raises(SystemExit) as exit_:
        main(["--quick", "--set", 'floor_variants=["remote"]'])
    assert exit_.value.code == 2
    assert "floor_variants" in capsys.readouterr().err


def _rate(cap, ceiling=False):
    return {"capacity_cps": cap, "ceiling_reached": ceiling, "steps": []}


def test_the_table_gives_each_design_its_capacity_and_asterisk_cpu_against_bare():
    res = {"asterisk": {"rate": _rate(80.0)}, "ari_floor": {"rate": _rate(28.0)},
           "floor_variants": {"local": {"rate": _rate(14.0)},
                              "native": {"rate": _rate(80.0, True), "placed": 40,
                                         "observed": {"callee_answered": 40, "ended": 40}}},
           "asterisk_cpu": {name: {"rate": 4.0, "calls": 40, "failed": 0, "why": "",
                                   "asterisk_cpu_ms_per_call": [ms, ms], "mean_ms": float(ms)}
                            for name, ms in (("asterisk", 20), ("ari-floor", 50),
                                             ("ari-floor-local", 100), ("native", 25))}}
    md = render_floors(res)
    rows = {line.split(" | ")[0]: line for line in md.splitlines() if line.startswith("| ")}
    assert "| 28.0 | 0.35 |" in rows["| ARI floor (PJSIP legs, bridged in Stasis)"]
    assert rows["| local: the floor with the service's Local legs (decision 0014)"].endswith("| 5.00 |")
    native = rows["| native: Asterisk bridging in the dialplan, followed through ARI"]
    assert "| ≥ 80.0 | 1.00 |" in native and native.endswith("| 1.25 |")
    assert "native: the app followed 40 calls and saw callee_answered 40, ended 40." in md
    assert render_floors({"asterisk": {"rate": _rate(80.0)}}) == ""


def test_native_local_agent_leg_keeps_the_agent_row_and_the_trunk_row():
    req = native_agent_leg("native00000001", "1001", "0200000001", "0215550199", local=True)
    assert req["params"]["endpoint"] == "Local/0200000001@c2d-agent-leg/n"
    assert req["params"]["otherChannelId"] == "native00000001-agent-dial"
    assert (req["params"]["context"], req["params"]["extension"]) == (CONTEXT, "0200000001")
    v = req["json_body"]["variables"]
    # ;1 keeps a row of its own (the trunk leg's); ;2 tags the agent's
    assert "CDR_PROP(disable)" not in v
    assert v["C2D_LEG_C2D_LEG"] == "agent" and v["C2D_CLID"] == "0215550199"
    assert v["CONNECTEDLINE(num)"] == "1001"      # ;2's caller: the agent, src of the agent's row
