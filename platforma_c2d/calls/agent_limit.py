"""An agent's active calls for ``[limits] max_active_calls_per_agent``, every origin counted.

A REST or a browser (header) call of an agent counts the agent's calls of
every way in: those the service holds (REST and header calls, a kept count
in the engine) and the agent's FastAGI calls still open in the journal —
the FastAGI server is a process of its own and writes them there. An agent
on a call placed through the dialplan is busy for the API as for the
browser phone.

FastAGI calls themselves are not refused by this limit (SPEC §6: a burst of
calls through the dialplan, from one phone as well, is served;
``platforma_c2d.agi.limits``).
"""

from __future__ import annotations

import asyncio
import logging

import sqlalchemy as sa

from platforma_c2d.calls.model import Origin, State
from platforma_c2d.store.journal import calls as calls_table

log = logging.getLogger(__name__)

_OPEN = tuple(s.value for s in State if s is not State.ENDED)


def open_calls(engine: sa.Engine, agent: str | None = None, origin: Origin | None = None) -> int:
    """Calls not yet ended in the journal at ``engine``: all of them, or only
    those of ``agent`` and/or of ``origin``. Raises
    ``sqlalchemy.exc.SQLAlchemyError`` when the store does not answer."""
    query = sa.select(sa.func.count()).select_from(calls_table).where(calls_table.c.state.in_(_OPEN))
    if agent is not None:
        query = query.where(calls_table.c.agent == agent)
    if origin is not None:
        query = query.where(calls_table.c.origin == origin.value)
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


async def agent_is_busy(call_engine, agent: str, limit: int) -> bool:
    """True when ``agent`` has ``limit`` active calls or more (0: no limit):
    the engine's calls of the agent, then — only if those leave room — its
    open FastAGI calls, read from the journal off the event loop.

    ``call_engine``: the ``CallEngine`` (its kept count and its journal).
    The engine's count is read again after the journal's answer, so that
    the caller registers its call before anything else runs on the loop. A
    store that does not answer counts no FastAGI call (logged): the call
    then fails at its first record, which needs that store too.
    """
    if not limit:
        return False
    if call_engine.active_for_agent(agent) >= limit:
        return True
    try:
        agi = await asyncio.to_thread(open_calls, call_engine.journal.engine, agent, Origin.AGI)
    except sa.exc.SQLAlchemyError as exc:
        log.warning("open FastAGI calls of agent %s not counted: the store does not answer (%s)",
                    agent, type(exc).__name__)
        agi = 0
    return call_engine.active_for_agent(agent) + agi >= limit
