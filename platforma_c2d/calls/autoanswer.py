"""Auto-answer of a REST call's agent leg (docs/configuration.md, ``[dial] auto_answer``).

Desk phones answer a call by themselves, on the speaker, when its INVITE
carries one of a few well-known headers; which one depends on the phone's
family. The header is added to the agent's leg only (an extension on a
PJSIP endpoint; never a leg through the trunk, never a browser phone's own
call) with ``PJSIP_HEADER(add,…)`` on the phone's channel before Asterisk
sends the INVITE: by the pre-dial handler of ``[c2d-agent-leg]``, which
gets the header from the leg's variables (``[dial] agent_leg_context``,
ADR 0014), or among the originate variables of a leg originated straight.
"""

from __future__ import annotations

from platforma_c2d.rules import is_extension

#: mode → (header name, value). The forms phones commonly honour:
#: ``call-info``: Polycom, Yealink, Grandstream, Snom and most softphones;
#: ``alert-info``: Cisco SPA / Linksys, Yealink, Fanvil ("intercom" ring);
#: ``answer-after``: Alert-Info with only the parameter (Grandstream, Aastra/Mitel).
AUTO_ANSWER_HEADERS: dict[str, tuple[str, str]] = {
    "call-info": ("Call-Info", "<sip:127.0.0.1>;answer-after=0"),
    "alert-info": ("Alert-Info", "<http://127.0.0.1>;info=alert-autoanswer;delay=0"),
    "answer-after": ("Alert-Info", ";answer-after=0"),
}
#: Every accepted value of ``[dial] auto_answer``: ``off`` or a header form.
AUTO_ANSWER_MODES = ("off", *AUTO_ANSWER_HEADERS)


def is_agent_mode(item: str) -> bool:
    """Whether ``item`` is an ``auto_answer_agents`` entry: ``EXTENSION:MODE``
    (``"1001:alert-info"``, ``"1002:off"``)."""
    agent, sep, mode = item.partition(":")
    return bool(sep) and is_extension(agent) and mode in AUTO_ANSWER_MODES


def auto_answer_header(agent: str, endpoint: str, default_mode: str,
                       per_agent: tuple[str, ...]) -> tuple[str, str] | None:
    """The (header name, value) that makes ``agent``'s phone answer by itself.

    ``agent``: the extension; ``endpoint``: its dial string (``PJSIP/1001``);
    ``default_mode``: ``[dial] auto_answer``; ``per_agent``: ``[dial]
    auto_answer_agents`` (``EXTENSION:MODE`` items, checked at load; the
    last one for an agent wins). None for ``off`` and for a channel that is
    not PJSIP (headers cannot be added there).
    """
    mode = default_mode
    for item in per_agent:
        name, _, value = item.partition(":")
        if name == agent:
            mode = value
    if mode == "off" or not endpoint.upper().startswith("PJSIP/"):
        return None
    return AUTO_ANSWER_HEADERS[mode]


def auto_answer_variables(agent: str, endpoint: str, default_mode: str,
                          per_agent: tuple[str, ...]) -> dict[str, str]:
    """The originate variables that add the header of :func:`auto_answer_header`
    (``{}`` when there is none)."""
    found = auto_answer_header(agent, endpoint, default_mode, per_agent)
    return {f"PJSIP_HEADER(add,{found[0]})": found[1]} if found else {}
