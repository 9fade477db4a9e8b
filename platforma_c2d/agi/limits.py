"""``[limits]`` for FastAGI calls (SPEC §9: every way in is bounded).

The FastAGI server is a process of its own, without the service's count of
live calls; it counts the calls not yet ended in the journal it shares with
the service (REST, browser and FastAGI calls alike), so that the dialplan
cannot pass ``max_active_calls``.

``max_active_calls_per_agent`` is not applied to FastAGI calls: a phone of
a dialplan-only PBX may have several lines, and SPEC §6 asks for a burst of
calls through the dialplan (a hundred at once, from one endpoint as well)
to be served; a PBX that wants a per-device limit has the dialplan's own
(``GROUP()``/``GROUP_COUNT()`` before ``AGI()``). The other way round, an
agent's open FastAGI calls do count against that limit for the agent's REST
and browser calls (``platforma_c2d.calls.agent_limit``).
"""

from __future__ import annotations

import sqlalchemy as sa

from platforma_c2d.calls.agent_limit import open_calls
from platforma_c2d.calls.errors import TooManyCalls
from platforma_c2d.config import LimitsConfig


def check_agi_limits(engine: sa.Engine, limits: LimitsConfig) -> None:
    """Refuse a FastAGI call when ``[limits] max_active_calls`` calls of any
    origin are up in all (:class:`TooManyCalls`, ``too-many-calls``); 0 = no
    cap. The dialplan refuses it like any other refusal (SIP 403). Raises
    ``sqlalchemy.exc.SQLAlchemyError``."""
    cap = limits.max_active_calls
    if cap and open_calls(engine) >= cap:
        raise TooManyCalls(f"{cap} calls are up already; try again when one ends",
                           {"limits": f"{cap} calls are up already ([limits] max_active_calls)"})
