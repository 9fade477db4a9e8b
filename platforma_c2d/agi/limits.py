"""``[limits]`` for FastAGI calls (SPEC §9: every way in is bounded).

The FastAGI server is a process of its own, without the service's count of
live calls; it counts the calls not yet ended in the journal it shares with
the service (REST, browser and FastAGI calls alike), so that an agent with
a call up cannot start another through the dialplan past
``max_active_calls_per_agent``, and the dialplan cannot pass
``max_active_calls``.
"""

from __future__ import annotations

import sqlalchemy as sa

from platforma_c2d.calls.errors import AgentBusy, TooManyCalls
from platforma_c2d.calls.model import State
from platforma_c2d.config import LimitsConfig
from platforma_c2d.store.journal import calls as calls_table

_OPEN = tuple(s.value for s in State if s is not State.ENDED)


def open_calls(engine: sa.Engine, agent: str | None = None) -> int:
    """Calls of every origin not yet ended in the journal at ``engine``: all
    of them, or (``agent`` given) that agent's. Raises
    ``sqlalchemy.exc.SQLAlchemyError`` when the store does not answer."""
    query = sa.select(sa.func.count()).select_from(calls_table).where(calls_table.c.state.in_(_OPEN))
    if agent is not None:
        query = query.where(calls_table.c.agent == agent)
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


def check_agi_limits(engine: sa.Engine, limits: LimitsConfig, agent: str) -> None:
    """Refuse a FastAGI call of ``agent`` when the agent already has
    ``[limits] max_active_calls_per_agent`` calls up (:class:`AgentBusy`,
    ``agent-busy``) or ``max_active_calls`` calls are up in all (:class:`TooManyCalls`,
    ``too-many-calls``); 0 = no limit. The dialplan refuses either like any
    other refusal (SIP 403). Raises ``sqlalchemy.exc.SQLAlchemyError``."""
    per_agent = limits.max_active_calls_per_agent
    if per_agent and open_calls(engine, agent) >= per_agent:
        raise AgentBusy("the agent already has an active call",
                        {"agent": f"already has {per_agent} active call(s) "
                                  "([limits] max_active_calls_per_agent)"})
    cap = limits.max_active_calls
    if cap and open_calls(engine) >= cap:
        raise TooManyCalls(f"{cap} calls are up already; try again when one ends",
                           {"limits": f"{cap} calls are up already ([limits] max_active_calls)"})
