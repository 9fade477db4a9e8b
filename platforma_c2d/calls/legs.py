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

from platforma_c2d.calls.autoanswer import auto_answer_header, auto_answer_variables
from platforma_c2d.calls.connected_line import keep_variables, shown_to_agent
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


def ringback_playback_id(call_id: str) -> str:
    """The playback id of the ringback tone played to a REST call's agent while the callee rings."""
    return f"{LEG_PREFIX}{call_id}-ringback"


#: The ringback tone a REST call's agent hears while the callee rings (SPEC §3.2):
#: Asterisk's ``ring`` tone of its indications, as an ARI playback.
RINGBACK_MEDIA = "tone:ring"


def tone_playback_id(call_id: str) -> str:
    """The playback id of the busy/congestion tone played to a REST call's agent."""
    return f"{LEG_PREFIX}{call_id}-tone"


def confirm_playback_id(call_id: str) -> str:
    """The playback id of the tone an external agent hears until they press 1."""
    return f"{LEG_PREFIX}{call_id}-confirm"


#: The codecs of a Local leg originated with no ``originator`` (ADR 0014): the
#: trunk's G.711. Without them Asterisk gives the Local channel every audio
#: format, it runs as ``slin192``, and every frame that crosses it (the
#: agent's ringback, then the call's audio both ways) is resampled from
#: 8 kHz to 192 kHz and back (docs/performance.md, Round three, "cpu").
LOCAL_LEG_FORMATS = "ulaw,alaw"

#: The id suffix of the second half (``;2``) of a leg's Local channel (ADR 0014).
DIAL_HALF_SUFFIX = "-dial"


def dial_half_id(channel_id: str) -> str:
    """The id of the half of a leg's Local channel that runs the dialplan (``;2``)."""
    return channel_id + DIAL_HALF_SUFFIX


def leg_of_dial_half(object_id: str) -> str | None:
    """The leg's channel id when ``object_id`` is the dialplan half of one of
    our Local legs (``c2d-…-dial``); None otherwise."""
    if is_ours(object_id) and object_id.endswith(DIAL_HALF_SUFFIX):
        return object_id[: -len(DIAL_HALF_SUFFIX)]
    return None


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


def _as_clid(clid: str, sub: str = "") -> dict[str, str]:
    """What the trunk sees of a leg: the CLID in From and P-Asserted-Identity (C16, C17);
    the connected line of an outgoing PJSIP channel is its caller. ``sub``: the
    subroutine that keeps that connected line through a two-party bridge (ADR 0015)."""
    return {"CALLERID(num)": clid, "CALLERID(name)": "",
            "CONNECTEDLINE(num)": clid, "CONNECTEDLINE(name)": "", **keep_variables(sub, clid, "")}


@dataclass(frozen=True)
class Originate:
    """One ``POST /channels`` of a leg (ADR 0003), as ``AriClient.originate`` takes it.

    ``endpoint``: the dial string; ``channel_id``: the id we chose;
    ``app_args``: the Stasis arguments (``c2d,<role>,<call id>``);
    ``variables``: set on the channel before it dials (JSON body, C10);
    ``timeout_s``: Asterisk's own limit (seconds; our ring timer comes
    first); ``originator``: the channel whose ``linkedid`` the leg shares;
    ``other_channel_id``: the id of a Local channel's ``;2`` (ADR 0014);
    ``formats``: its codecs when it has no ``originator`` (``LOCAL_LEG_FORMATS``).
    """

    endpoint: str
    channel_id: str
    app_args: str
    variables: dict[str, str]
    timeout_s: float
    originator: str | None = None
    other_channel_id: str | None = None
    formats: str | None = None

    def kwargs(self) -> dict:
        """The keyword arguments of ``AriClient.originate``."""
        out = {"endpoint": self.endpoint, "channel_id": self.channel_id, "app_args": self.app_args,
               "variables": self.variables, "timeout_s": self.timeout_s, "originator": self.originator}
        if self.other_channel_id:
            out["other_channel_id"] = self.other_channel_id
        if self.formats:
            out["formats"] = self.formats
        return out


def agent_endpoint(call: Call, dial: DialConfig) -> str:
    """The dial string of a REST call's agent: ``[dial] trunk_endpoint`` for an
    external agent (a number), ``[dial] agent_endpoint`` for an extension."""
    if call.agent_is_external:
        return dial.trunk_endpoint.format(number=call.agent)
    return dial.agent_endpoint.format(agent=call.agent)


#: The dialplan context a natively bridged call's agent leg is continued into (ADR 0018).
NATIVE_CONTEXT = "c2d-native-call"


def native_call_variables(call: Call, dial: DialConfig) -> dict[str, str]:
    """What ``[c2d-native-call]`` reads on a natively bridged call's agent leg (``;1``),
    set at its originate so the continue needs no request more: the callee's
    ``Dial()`` string and ring timeout, the maximum duration (s; 0 = none) and how
    long the agent hears the busy or congestion tone (s). The CLID and the CDR
    variables are the ``C2D_LEG_*`` the leg already carries. Pure."""
    return {"C2D_NATIVE_DIAL": dial.trunk_endpoint.format(number=call.callee),
            "C2D_NATIVE_TIMEOUT": str(dial.callee_ring_timeout_s),
            "C2D_NATIVE_MAX_S": str(dial.max_call_duration_s),
            "C2D_NATIVE_TONE_S": str(dial.tone_s)}


def agent_originate(call: Call, dial: DialConfig, sub: str = "") -> Originate:
    """The originate of a REST call's agent leg (SPEC §3.1).

    An extension's desk phone shows the callee's number (and may be told to
    answer by itself, ``[dial] auto_answer``). Through the trunk only our own
    CLIDs are ever presented: showing the callee's number there would let any
    caller spoof any number towards any phone, past ``[clid] allowed``.

    An extension's leg goes through ``[dial] agent_leg_context`` when set
    (its CDR row: ``src`` = the agent, ``dst`` = the callee; ADR 0014); an
    external agent's leg is a trunk leg, through ``[dial] trunk_leg_context``
    when set (``src`` = the CLID, ``dst`` = the agent's number, SPEC §5).
    ``sub``: the context of the subroutine that keeps the leg's connected
    line through a two-party bridge (``calls.connected_line``; ``""``: none).
    A natively bridged call (``call.native``) also carries
    :func:`native_call_variables`.
    """
    endpoint = agent_endpoint(call, dial)
    channel_id = agent_channel_id(call.id)
    variables = cdr_variables(call, "agent")
    other = None
    if call.agent_is_external:
        variables.update(_as_clid(call.clid, sub))
        if dial.trunk_leg_context:
            variables, other = _through_dialplan(call, "agent", variables, endpoint,
                                                 dial.agent_ring_timeout_s, channel_id)
            endpoint = f"Local/{call.agent}@{dial.trunk_leg_context}/n"
        else:
            variables.update(refer_refused())
    elif dial.agent_leg_context:
        variables.update(_shown_to_agent(call, endpoint, dial))
        variables.update(keep_variables(sub, call.agent, ""))
        if call.native:
            variables.update(native_call_variables(call, dial))
        variables, other = _through_dialplan(call, "agent", variables, endpoint,
                                             dial.agent_ring_timeout_s, channel_id, trunk=False)
        endpoint = f"Local/{call.callee}@{dial.agent_leg_context}/n"
    else:
        variables.update(shown_to_agent(sub, call.callee))
        variables.update(auto_answer_variables(call.agent, endpoint, dial.auto_answer,
                                               dial.auto_answer_agents))
    return Originate(endpoint=endpoint, channel_id=channel_id,
                     app_args=f"c2d,agent,{call.id}", variables=variables,
                     timeout_s=dial.agent_ring_timeout_s + 5, other_channel_id=other,
                     formats=LOCAL_LEG_FORMATS if other else None)


def _shown_to_agent(call: Call, endpoint: str, dial: DialConfig) -> dict[str, str]:
    """The variables of an extension's leg through ``[dial] agent_leg_context``.

    ``;1``'s connected line becomes ``;2``'s caller: the agent, the ``src``
    of the leg's row. What the phone is shown (the callee) and the
    auto-answer header are handed to the context, whose pre-dial handler
    sets them on the phone's own channel (``C2D_LEG_SHOW``,
    ``C2D_LEG_ANSWER_HEADER``/``_VALUE``; empty: no header).
    """
    header, value = auto_answer_header(call.agent, endpoint, dial.auto_answer,
                                       dial.auto_answer_agents) or ("", "")
    return {"CONNECTEDLINE(num)": call.agent, "CONNECTEDLINE(name)": "", "C2D_LEG_SHOW": call.callee,
            "C2D_LEG_ANSWER_HEADER": header, "C2D_LEG_ANSWER_VALUE": value}


def callee_originate(call: Call, dial: DialConfig, sub: str = "") -> Originate:
    """The originate of a call's callee leg, through the trunk with the CLID (SPEC §3.2, §3.7).

    Originated with ``originator=`` the agent leg (the browser's channel of
    a WebRTC call), so both legs share one ``linkedid`` in the CDRs (C17).
    ``sub``: as for ``agent_originate``.
    """
    variables = cdr_variables(call, "callee")
    variables.update(_as_clid(call.clid, sub))
    channel_id = call.callee_leg.channel_id if call.callee_leg else callee_channel_id(call.id)
    endpoint = dial.trunk_endpoint.format(number=call.callee)
    other = None
    if dial.trunk_leg_context:
        variables, other = _through_dialplan(call, "callee", variables, endpoint,
                                             dial.callee_ring_timeout_s, channel_id)
        endpoint = f"Local/{call.callee}@{dial.trunk_leg_context}/n"
    else:
        variables.update(refer_refused())
    return Originate(endpoint=endpoint, channel_id=channel_id,
                     app_args=f"c2d,callee,{call.id}", variables=variables,
                     timeout_s=dial.callee_ring_timeout_s + 5,
                     originator=call.agent_leg.channel_id, other_channel_id=other)


#: The transfer context handed to the trunk's channel of a leg through
#: ``[dial] trunk_leg_context``: no such context exists, so Asterisk answers a
#: REFER from the carrier (or from the callee through it) 404 and the call goes
#: on, whatever the trunk endpoint's ``allow_transfer`` and ``context`` (an
#: administrator's trunk keeps Asterisk's ``allow_transfer=yes``, and its
#: context may route calls anywhere). res_pjsip_refer reads ``TRANSFER_CONTEXT``
#: of the channel that received the REFER; ``_`` hands it from ``;2`` to the
#: channel its ``Dial()`` creates, and no further.
TRUNK_REFER_CONTEXT = "c2d-trunk-refer-refused"


def refer_refused() -> dict[str, str]:
    """The variable of a trunk channel the service originates itself (a leg
    dialled straight to ``[dial] trunk_endpoint``, ``trunk_leg_context = ""``):
    a REFER it receives from the carrier finds no target in
    :data:`TRUNK_REFER_CONTEXT` and moves nobody (404), whatever the trunk
    endpoint's ``allow_transfer`` and ``context``. Not inherited: nothing else
    hangs off that channel."""
    return {"TRANSFER_CONTEXT": TRUNK_REFER_CONTEXT}


def _through_dialplan(call: Call, role: str, variables: dict[str, str], endpoint: str,
                      ring_timeout_s: int, channel_id: str, *, trunk: bool = True) -> tuple[dict[str, str], str]:
    """A leg as ``Local/<number>@<context>/n`` (ADR 0014): ``;1``'s variables.

    Both halves have the number as their extension from creation, so the
    CDR row of ``;2``, which dials ``endpoint`` (``C2D_LEG_DIAL``), names it
    in ``dst``, answered or not. ``;1`` (in the app) gets no row of its own;
    ``;2`` tags its row with the ``C2D_LEG_*`` copies of the CDR variables
    of ``role`` (Local copies channel variables from ``;1`` to ``;2``).
    ``;1``'s caller ID and connected line become ``;2``'s connected line and
    caller, which ``;2`` presents to what it dials.
    ``trunk``: the leg leaves through the trunk: the trunk's channel may not
    transfer it anywhere (:data:`TRUNK_REFER_CONTEXT`).
    Returns (variables, the id of ``;2``).
    """
    out = {"CDR_PROP(disable)": "1"}
    if trunk:
        out["_TRANSFER_CONTEXT"] = TRUNK_REFER_CONTEXT
    out.update(variables)
    for name, value in cdr_variables(call, role).items():
        out["C2D_LEG_" + name[4:-1].upper()] = value      # CDR(call_ref) → C2D_LEG_CALL_REF
    out["C2D_LEG_DIAL"] = endpoint
    out["C2D_LEG_TIMEOUT"] = str(ring_timeout_s + 5)
    return out, dial_half_id(channel_id)
