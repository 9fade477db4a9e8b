"""The legs of a call, specified: their ids, their CDR variables, what each originate carries.

Pure functions, no I/O: the engine sends what they build, the Stasis app
and recovery recognise our channels and bridges by the same ids
(docs/architecture.md, *Legs and ids*).

Ids are chosen by us before any request (field report C01): the agent leg
of a REST call ``c2d-<call id>-agent``, the callee leg
``c2d-<call id>-callee``, the bridge ``c2d-<call id>``. Every leg carries
the call's CDR variables from its creation (C10, C20, C22; docs/cdr.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from platforma_c2d.calls.autoanswer import auto_answer_variables
from platforma_c2d.calls.model import Call
from platforma_c2d.config import DialConfig

#: Every channel, bridge and playback id we choose starts with this.
LEG_PREFIX = "c2d-"


def agent_channel_id(call_id: str) -> str:
    """The channel id of a REST call's agent leg."""
    return f"{LEG_PREFIX}{call_id}-agent"


def callee_channel_id(call_id: str) -> str:
    """The channel id of a call's callee leg."""
    return f"{LEG_PREFIX}{call_id}-callee"


def bridge_id_for(call_id: str) -> str:
    """The bridge id of a call (also the bridge's name)."""
    return f"{LEG_PREFIX}{call_id}"


def tone_playback_id(call_id: str) -> str:
    """The playback id of the busy/congestion tone played to a REST call's agent."""
    return f"{LEG_PREFIX}{call_id}-tone"


def confirm_playback_id(call_id: str) -> str:
    """The playback id of the tone an external agent hears until they press 1."""
    return f"{LEG_PREFIX}{call_id}-confirm"


def is_ours(object_id: str) -> bool:
    """Whether a channel or bridge id is one we chose (``c2d-…``), of any call or run."""
    return object_id.startswith(LEG_PREFIX)


def cdr_variables(call: Call, role: str) -> dict[str, str]:
    """The CDR variables of SPEC §5 for a leg of ``call`` (``role``: ``agent`` or ``callee``).

    Set at creation, never at teardown (C22); a CDR variable on every leg,
    not a userfield (C20).
    """
    return {"CDR(call_ref)": call.call_ref, "CDR(c2d_call_id)": call.id,
            "CDR(c2d_leg)": role, "CDR(c2d_agent)": call.agent, "CDR(c2d_clid)": call.clid}


def _as_clid(clid: str) -> dict[str, str]:
    """What the trunk sees of a leg: the CLID in From and P-Asserted-Identity (C16, C17);
    the connected line of an outgoing PJSIP channel is its caller."""
    return {"CALLERID(num)": clid, "CALLERID(name)": "",
            "CONNECTEDLINE(num)": clid, "CONNECTEDLINE(name)": ""}


@dataclass(frozen=True)
class Originate:
    """One ``POST /channels`` of a leg (ADR 0003), as ``AriClient.originate`` takes it.

    ``endpoint``: the dial string; ``channel_id``: the id we chose;
    ``app_args``: the Stasis arguments (``c2d,<role>,<call id>``);
    ``variables``: set on the channel before it dials (JSON body, C10);
    ``timeout_s``: Asterisk's own limit (seconds; our ring timer comes
    first); ``originator``: the channel whose ``linkedid`` the leg shares.
    """

    endpoint: str
    channel_id: str
    app_args: str
    variables: dict[str, str]
    timeout_s: float
    originator: str | None = None

    def kwargs(self) -> dict:
        """The keyword arguments of ``AriClient.originate``."""
        return {"endpoint": self.endpoint, "channel_id": self.channel_id, "app_args": self.app_args,
                "variables": self.variables, "timeout_s": self.timeout_s, "originator": self.originator}


def agent_endpoint(call: Call, dial: DialConfig) -> str:
    """The dial string of a REST call's agent: ``[dial] trunk_endpoint`` for an
    external agent (a number), ``[dial] agent_endpoint`` for an extension."""
    if call.agent_is_external:
        return dial.trunk_endpoint.format(number=call.agent)
    return dial.agent_endpoint.format(agent=call.agent)


def agent_originate(call: Call, dial: DialConfig) -> Originate:
    """The originate of a REST call's agent leg (SPEC §3.1).

    An extension's desk phone shows the callee's number (and may be told to
    answer by itself, ``[dial] auto_answer``). Through the trunk only our own
    CLIDs are ever presented: showing the callee's number there would let any
    caller spoof any number towards any phone, past ``[clid] allowed``.
    """
    endpoint = agent_endpoint(call, dial)
    variables = cdr_variables(call, "agent")
    if call.agent_is_external:
        variables.update(_as_clid(call.clid))
    else:
        variables["CONNECTEDLINE(num)"] = call.callee
        variables["CONNECTEDLINE(name)"] = call.callee
        variables.update(auto_answer_variables(call.agent, endpoint, dial.auto_answer,
                                               dial.auto_answer_agents))
    return Originate(endpoint=endpoint, channel_id=agent_channel_id(call.id),
                     app_args=f"c2d,agent,{call.id}", variables=variables,
                     timeout_s=dial.agent_ring_timeout_s + 5)


def callee_originate(call: Call, dial: DialConfig) -> Originate:
    """The originate of a call's callee leg, through the trunk with the CLID (SPEC §3.2, §3.7).

    Originated with ``originator=`` the agent leg (the browser's channel of
    a WebRTC call), so both legs share one ``linkedid`` in the CDRs (C17).
    """
    variables = cdr_variables(call, "callee")
    variables.update(_as_clid(call.clid))
    return Originate(endpoint=dial.trunk_endpoint.format(number=call.callee),
                     channel_id=call.callee_leg.channel_id if call.callee_leg else callee_channel_id(call.id),
                     app_args=f"c2d,callee,{call.id}", variables=variables,
                     timeout_s=dial.callee_ring_timeout_s + 5,
                     originator=call.agent_leg.channel_id)
