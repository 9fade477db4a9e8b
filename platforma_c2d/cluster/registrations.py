"""Which node an agent's endpoint is registered on (``[cluster] agents_by = "registration"``).

The active instance of each node reads its Asterisk's PJSIP endpoints
(``GET /endpoints/PJSIP``) every ``interval_s`` seconds and keeps the
``online`` ones (a registered contact, or a static one not known to be
unreachable) in the table ``cluster_endpoints``, rewriting its node's rows
only when the set changed. Another instance finds an agent's node there;
rows count only while their node has an active instance (its lock in
``pg_locks``), so a dead node's stale rows never send a call to it.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import sqlalchemy as sa

from platforma_c2d.cluster.lease import node_is_active
from platforma_c2d.store.cluster_tables import endpoints

log = logging.getLogger("platforma_c2d.cluster")



def online_endpoints(listing: list[dict]) -> set[str]:
    """The resources of ``GET /endpoints/PJSIP``'s answer whose state is ``online``."""
    return {e["resource"] for e in listing or () if e.get("state") == "online" and e.get("resource")}


def registered_node(engine: sa.Engine, agent: str) -> str | None:
    """The node whose Asterisk has ``agent``'s endpoint online, among nodes with an
    active instance (the first by name when several have it); None when none.
    Raises ``sqlalchemy.exc.SQLAlchemyError``."""
    with engine.connect() as conn:
        nodes = conn.execute(sa.select(endpoints.c.node).where(endpoints.c.endpoint == agent)
                             .order_by(endpoints.c.node)).scalars().all()
    return next((node for node in nodes if node_is_active(engine, node)), None)


class EndpointPublisher:
    """On a node's active instance: publishes its online PJSIP endpoints (a thread).

    ``ari``: the instance's ``AriClient``; ``loop``: its telephony loop (the ARI
    request runs there; the SQL on this thread, never on the loop);
    ``engine``: the store; ``node``: this node; ``interval_s``: seconds between reads.
    """

    def __init__(self, ari, loop: asyncio.AbstractEventLoop, engine: sa.Engine, node: str,
                 interval_s: float = 2.0):
        self.ari, self.loop, self.engine, self.node, self.interval_s = ari, loop, engine, node, interval_s
        self.published: set[str] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cluster-endpoints", daemon=True)

    def start(self) -> None:
        """Start publishing (returns at once)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop publishing; the rows stay (they count only while the node is active). Idempotent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def publish(self, online: set[str]) -> bool:
        """Make this node's rows ``online``; returns whether they changed."""
        if online == self.published:
            return False
        with self.engine.begin() as conn:
            conn.execute(endpoints.delete().where(endpoints.c.node == self.node))
            if online:
                conn.execute(endpoints.insert(), [{"endpoint": e, "node": self.node} for e in sorted(online)])
        self.published = online
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                listing = asyncio.run_coroutine_threadsafe(
                    self.ari.endpoints("PJSIP"), self.loop).result(timeout=10)
                self.publish(online_endpoints(listing))
            except Exception as exc:  # noqa: BLE001 - ARI down or the store: try again later
                log.warning("cluster endpoints not published: %s", str(exc)[:200])
            self._stop.wait(self.interval_s)
