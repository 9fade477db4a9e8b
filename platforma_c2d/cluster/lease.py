"""One active instance per node, chosen through PostgreSQL (SPEC §11).

The active instance of a node is the one that holds the node's
session-level advisory lock (``pg_try_advisory_lock``, key
:func:`~platforma_c2d.cluster.routing.node_lock_key`) on a connection of its
own. PostgreSQL releases the lock with the session: an instance killed, or
cut from the store, loses it, and a standby that tries every
``[cluster] lease_check_s`` takes it. No consensus of our own: the database
decides, as it already serialises every write.

The active instance checks its connection as often. The moment the check
fails it has lost the store, so it can no longer journal a call nor know
whether a standby took over: :class:`NodeLease` calls ``on_lost`` and the
runtime stops the process (docs/cluster.md, "When PostgreSQL goes away").

The same thread also tries the cluster's delivery lock: the instance that
holds it (active or standby, of any node) delivers the webhooks of the
whole cluster, so each event is sent once, not once per instance.
"""

from __future__ import annotations

import logging
import threading

import psycopg
import sqlalchemy as sa

from platforma_c2d.cluster.routing import DELIVERY_LOCK, LOCK_CLASS, node_lock_key

log = logging.getLogger("platforma_c2d.cluster")

#: libpq keepalives (an idle connection) and TCP user timeout (a query waiting for its
#: answer, in ms): a dead server or a cut network is noticed within about 5 s.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 2, "keepalives_interval": 1, "keepalives_count": 3,
              "tcp_user_timeout": 5000, "connect_timeout": 5}

_HELD = sa.text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND classid = :c AND objid = :o AND objsubid = 2"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))")


def libpq_url(url: str) -> str:
    """The libpq connection URI of a SQLAlchemy PostgreSQL URL (``postgresql+psycopg://…``)."""
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def lock_key_int(key: tuple[int, int]) -> tuple[int, int]:
    """A lock key as pg_locks shows it: (classid, objid) as unsigned 32-bit oids."""
    return key[0] & 0xFFFFFFFF, key[1] & 0xFFFFFFFF


def node_is_active(engine: sa.Engine, node: str) -> bool:
    """Whether some instance of ``node`` holds its lock now (pg_locks of this database).

    Raises ``sqlalchemy.exc.SQLAlchemyError`` when the store does not answer."""
    c, o = lock_key_int(node_lock_key(node))
    with engine.connect() as conn:
        return bool(conn.execute(_HELD, {"c": c, "o": o}).scalar())


class NodeLease:
    """The thread that makes this instance its node's active one when it may.

    ``url``: the store's SQLAlchemy URL; ``node``, ``instance``: names
    (``[cluster]``); ``check_s``: seconds between attempts and checks.
    Callbacks, run on this thread: ``on_active()`` once the node's lock is
    taken; ``on_delivery()`` once the cluster's delivery lock is taken (only
    when ``delivery`` is true); ``on_lost(why)`` once, when an instance that
    holds either lock loses its connection (the thread then ends).
    ``role`` is ``"standby"``, ``"active"`` or ``"lost"``.
    """

    def __init__(self, url: str, node: str, instance: str, check_s: float, *, on_active, on_lost,
                 on_delivery=None):
        self.conninfo = libpq_url(url)
        self.node, self.instance, self.check_s = node, instance, check_s
        self.on_active, self.on_lost, self.on_delivery = on_active, on_lost, on_delivery
        self.role = "standby"
        self.delivering = False
        self._conn: psycopg.Connection | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cluster-lease", daemon=True)

    def start(self) -> None:
        """Start trying (returns at once)."""
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop, and release the locks by closing the connection (a standby takes over
        at its next attempt). Idempotent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._close()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.conninfo, autocommit=True,
                               application_name=f"platforma-c2d {self.instance}"[:63], **KEEPALIVES)

    def _try(self, conn: psycopg.Connection, key: tuple[int, int]) -> bool:
        return bool(conn.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone()[0])

    def step(self) -> None:
        """One attempt (standby) or check (active); raises ``psycopg.Error`` when the store
        does not answer."""
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        if self.role == "standby" and self._try(conn, node_lock_key(self.node)):
            self.role = "active"
            log.warning("active instance of node %s now", self.node,
                        extra={"fields": {"node": self.node, "instance": self.instance}})
            self.on_active()
        if self.on_delivery is not None and not self.delivering and self._try(conn, (LOCK_CLASS, DELIVERY_LOCK)):
            self.delivering = True
            log.info("delivering the cluster's webhooks", extra={"fields": {"instance": self.instance}})
            self.on_delivery()
        conn.execute("SELECT 1")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except psycopg.Error as exc:
                self._close()
                if self.role == "active" or self.delivering:
                    self.role = "lost"
                    log.critical("lost the store: no longer the active instance of node %s",
                                 self.node, extra={"fields": {"node": self.node, "instance": self.instance,
                                                              "error": str(exc).strip()[:200]}})
                    self.on_lost(str(exc).strip()[:200])
                    return
                log.warning("standby cannot reach the store: %s", str(exc).strip()[:200])
            self._stop.wait(self.check_s)
