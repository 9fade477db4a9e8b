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

from platforma_c2d.config.auto_answer import AUTO_ANSWER_HEADERS


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
