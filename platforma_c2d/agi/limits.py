"""``[limits]`` for FastAGI calls (SPEC §9: every way in is bounded).

The FastAGI server is a process of its own, without the service's count of
live calls; it counts the calls not yet ended in the journal it shares with
the service (REST, browser and FastAGI calls alike), so that the dialplan
cannot pass ``max_active_calls``.

``max_active_calls_per_agent`` is not applied to FastAGI calls: a phone of
a dialplan-only PBX may have several lines, and SPEC §6 asks for a burst of
calls through the dialplan (a hundred at once, from one endpoint as well)
to be served; a PBX that wants a per-device limit has the dialplan's own
(``GROUP()``/``GROUP_COUNT()`` before ``AGI()``).
"""

from __future__ import annotations

import sqlalchemy as sa

from platforma_c2d.calls.errors import TooManyCalls
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


def check_agi_limits(engine: sa.Engine, limits: LimitsConfig) -> None:
    """Refuse a FastAGI call when ``[limits] max_active_calls`` calls of any
    origin are up in all (:class:`TooManyCalls`, ``too-many-calls``); 0 = no
    cap. The dialplan refuses it like any other refusal (SIP 403). Raises
    ``sqlalchemy.exc.SQLAlchemyError``."""
    cap = limits.max_active_calls
    if cap and open_calls(engine) >= cap:
        raise TooManyCalls(f"{cap} calls are up already; try again when one ends",
                           {"limits": f"{cap} calls are up already ([limits] max_active_calls)"})
