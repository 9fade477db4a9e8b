"""Toll-fraud and caller-ID policy (SPEC §7 ``[clid]``, ``[policy]``; issue "toll fraud").

Pure checks on an already valid ``CallRequest``; raise the matching
``C2DError``. The same checks serve REST, WebRTC headers and AGI.
"""

from __future__ import annotations

from platforma_c2d.calls.errors import ClidNotAllowed, DestinationNotAllowed
from platforma_c2d.config import ClidConfig, PolicyConfig
from platforma_c2d.rules import RANDOM, CallRequest


def _allowed(number: str, allow: tuple[str, ...], deny: tuple[str, ...]) -> bool:
    """Deny prefixes win; an empty allow list allows every number."""
    if any(number.startswith(p) for p in deny):
        return False
    return not allow or any(number.startswith(p) for p in allow)


class Policy:
    """Checks a request against ``[clid]`` and ``[policy]``.

    ``check(req)`` raises ``ClidNotAllowed`` when ``outbound_id`` is a number
    outside ``[clid].allowed`` (when that list is set), and
    ``DestinationNotAllowed`` when the callee, or an external agent number,
    matches a deny prefix or misses every allow prefix (an external agent
    number is held to the callee lists while no ``agent_number_*`` list is
    set, :func:`agent_number_lists`).
    """

    def __init__(self, clid: ClidConfig, policy: PolicyConfig):
        self.clid, self.policy = clid, policy

    def check(self, req: CallRequest, *, agent_dialled: bool = True) -> None:
        """Raise the first refusal that applies to ``req``; return None if it may be dialled.

        ``agent_dialled``: the agent's leg is dialled through the trunk (a REST
        call); False for a phone's own call (header, FastAGI), whose agent is
        the calling endpoint: its number is then held to the ``agent_number_*``
        lists alone, never to the callee lists (:func:`agent_number_lists`)."""
        if req.outbound_id not in ("", RANDOM) and self.clid.allowed \
                and req.outbound_id not in self.clid.allowed:
            raise ClidNotAllowed("the outbound_id is not an allowed outbound ID on this PBX",
                                 {"fields": {"outbound_id": "not an allowed outbound ID"}},
                                 hint="not in [clid] allowed")
        p = self.policy
        if not _allowed(req.callee, p.callee_allow_prefixes, p.callee_deny_prefixes):
            raise DestinationNotAllowed("calls to this callee number are not allowed",
                                        {"fields": {"callee": "calls to this number are not allowed on this PBX"}},
                                        hint="refused by [policy] callee_allow_prefixes/callee_deny_prefixes")
        if req.agent_is_external:
            allow, deny, keys = agent_number_lists(p, agent_dialled)
            if not _allowed(req.agent, allow, deny):
                raise DestinationNotAllowed("calls to this external agent number are not allowed",
                                            {"fields": {"agent": "calls to this number are not allowed on this PBX"}},
                                            hint=f"refused by [policy] {keys}")


def agent_number_lists(policy: PolicyConfig,
                       agent_dialled: bool = True) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """The ``(allow, deny, keys)`` prefixes an external agent's number is held to.

    An external agent's leg leaves through the trunk like a callee's and
    costs the same: while neither ``agent_number_allow_prefixes`` nor
    ``agent_number_deny_prefixes`` is set, the callee lists apply to it, so
    that denying premium-rate and international callees is not undone by
    giving such a number as the agent. Not so when ``agent_dialled`` is
    False (the agent is the phone placing the call, named like a number):
    nothing is dialled to it. ``keys`` names the config keys that decided,
    for the refusal's hint. Never raises.
    """
    if policy.agent_number_allow_prefixes or policy.agent_number_deny_prefixes or not agent_dialled:
        return (policy.agent_number_allow_prefixes, policy.agent_number_deny_prefixes,
                "agent_number_allow_prefixes/agent_number_deny_prefixes")
    return (policy.callee_allow_prefixes, policy.callee_deny_prefixes,
            "callee_allow_prefixes/callee_deny_prefixes (external agents are held to them "
            "while no agent_number_* list is set)")
