"""Commands between instances, through the store (SPEC §11).

A placement or a cancellation that an instance cannot carry out itself
(the call's node is another, or this instance is a standby) is a row of
``cluster_commands`` for the node's active instance:

1. the sending instance checks that the node has an active instance
   (:func:`~platforma_c2d.cluster.lease.node_is_active`), inserts the row
   (``pending``) and ``NOTIFY``\\ s the channel in the same transaction;
2. the active instance of that node (:class:`CommandWorker`), woken by
   ``LISTEN`` or by its poll every ``poll_s`` seconds, takes its node's
   pending rows (``FOR UPDATE SKIP LOCKED``: each row once), runs each as if
   the request had come to it, and writes the answer (``done``) — the call
   resource, or the error an API client would get;
3. the sender polls the row for the answer, until ``[cluster]
   command_timeout_s``; then a row still ``pending`` is marked ``expired``
   (it is never run) and the sender answers 503. A row already ``taken`` is
   being carried out: the sender waits ``grace_s`` more for its answer, so
   a call placed is not answered 503.

The worker runs no command older than that timeout, so a request that got
its 503 is not carried out afterwards. Ages are measured on one clock, the
store's (``clock_timestamp()``): the instances' own clocks may disagree by
more than the timeout without a command being taken for stale.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import sqlalchemy as sa

from platforma_c2d.calls.errors import AsteriskUnavailable, C2DError
from platforma_c2d.cluster.lease import KEEPALIVES, libpq_url, node_is_active
from platforma_c2d.store.cluster_tables import commands

log = logging.getLogger("platforma_c2d.cluster")

#: The LISTEN/NOTIFY channel; the payload is the node the command is for.
CHANNEL = "c2d_cluster_commands"
#: Seconds answered (or expired) commands are kept for someone looking into a problem.
KEEP_S = 3600

_CLAIM = sa.text(
    "UPDATE cluster_commands SET state = 'taken', taken_by = :me WHERE id IN ("
    " SELECT id FROM cluster_commands WHERE node = :node AND state = 'pending'"
    " ORDER BY id LIMIT 32 FOR UPDATE SKIP LOCKED)"
    " RETURNING id, kind, payload, extract(epoch FROM clock_timestamp()) - created_at AS age")

#: Now, in epoch seconds, on the store's clock: the one clock every instance shares.
_STORE_NOW = sa.func.extract("epoch", sa.func.clock_timestamp())


def error_to_dict(exc: C2DError) -> dict:
    """An API error as data, to be raised again by another instance (:func:`error_from_dict`)."""
    return {"error": exc.error, "message": exc.message, "details": exc.details, "headers": exc.headers}


def _error_classes(cls=C2DError) -> dict[str, type]:
    out = {cls.error: cls}
    for sub in cls.__subclasses__():
        out.update(_error_classes(sub))
    return out


def error_from_dict(data: dict) -> C2DError:
    """The error :func:`error_to_dict` described: the same class (by its id), message,
    details and headers; a ``C2DError`` for an id this release does not know."""
    cls = _error_classes().get(data.get("error"), C2DError)
    exc = cls.__new__(cls)
    Exception.__init__(exc, data.get("message", ""))
    exc.message, exc.details = data.get("message", ""), data.get("details") or {}
    exc.headers, exc.hint = data.get("headers") or {}, ""
    return exc


class CommandBus:
    """Sends commands to a node's active instance and waits for the answers (any thread).

    ``engine``: the store (PostgreSQL); ``timeout_s``: ``[cluster]
    command_timeout_s``; ``grace_s``: seconds more for the answer of a command
    the owner has taken (the owner's own bound on a request); ``poll_s``:
    seconds between two reads of the answer.
    """

    def __init__(self, engine: sa.Engine, timeout_s: float, grace_s: float = 0.0, poll_s: float = 0.02):
        self.engine, self.timeout_s, self.grace_s, self.poll_s = engine, timeout_s, grace_s, poll_s

    def send(self, node: str, kind: str, payload: dict) -> dict:
        """Run command ``kind`` (``place``, ``cancel``) with ``payload`` on ``node``'s active
        instance; returns its answer (a dict). Raises the API error the owner raised,
        or ``AsteriskUnavailable`` (503) when the node has no active instance, the
        store does not answer, or no answer came within ``timeout_s``."""
        try:
            if not node_is_active(self.engine, node):
                raise AsteriskUnavailable(f"node {node} has no active instance; try again shortly",
                                          {"node": node})
            with self.engine.begin() as conn:
                command_id = conn.execute(commands.insert().values(
                    node=node, kind=kind, payload=json.dumps(payload), state="pending",
                    created_at=_STORE_NOW)).inserted_primary_key[0]
                conn.execute(sa.text("SELECT pg_notify(:ch, :node)"), {"ch": CHANNEL, "node": node})
            deadline = time.monotonic() + self.timeout_s
            extended = False
            query = sa.select(commands.c.state, commands.c.result).where(commands.c.id == command_id)
            while True:
                with self.engine.connect() as conn:
                    state, result = conn.execute(query).one()
                if state == "done":
                    break
                if time.monotonic() > deadline:
                    with self.engine.begin() as conn:
                        expired = conn.execute(commands.update().where(commands.c.id == command_id,
                                                                       commands.c.state == "pending")
                                               .values(state="expired")).rowcount
                    if expired or extended:
                        raise AsteriskUnavailable(f"node {node} did not answer in time; try again shortly",
                                                  {"node": node})
                    deadline, extended = time.monotonic() + self.grace_s, True   # taken: being done
                time.sleep(self.poll_s)
        except sa.exc.SQLAlchemyError as exc:
            raise AsteriskUnavailable("the store does not answer; try again shortly") from exc
        answer = json.loads(result)
        if "error" in answer:
            raise error_from_dict(answer["error"])
        return answer["ok"]


class CommandWorker:
    """Runs this node's commands on its active instance: one listening thread and a
    pool of ``threads`` workers that call ``handler(kind, payload) -> dict`` (it may
    raise a ``C2DError``: that error is the answer).

    ``url``: the store's SQLAlchemy URL (the LISTEN connection is its own);
    ``engine``: the store; ``timeout_s``: commands older than this are not run
    (their sender has answered 503); ``poll_s``: seconds between two looks at
    the table when no notification comes.
    """

    def __init__(self, url: str, engine: sa.Engine, node: str, instance: str, handler, *,
                 timeout_s: float, poll_s: float = 1.0, threads: int = 8):
        self.conninfo, self.engine = libpq_url(url), engine
        self.node, self.instance, self.handler = node, instance, handler
        self.timeout_s, self.poll_s = timeout_s, poll_s
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cluster-command")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cluster-commands", daemon=True)
        self._swept = 0.0

    def start(self) -> None:
        """Start listening (returns at once)."""
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop taking commands; those running finish. Idempotent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self.pool.shutdown(wait=False)

    def claim(self) -> int:
        """Take this node's pending commands and hand them to the pool; returns how many."""
        with self.engine.begin() as conn:
            rows = conn.execute(_CLAIM, {"me": self.instance, "node": self.node}).all()
        claimed = time.monotonic()
        for row in rows:
            self.pool.submit(self._execute, row.id, row.kind, row.payload, float(row.age), claimed)
        return len(rows)

    def _execute(self, command_id: int, kind: str, payload: str, age_s: float, claimed: float) -> None:
        # The age on the store's clock when claimed, plus the wait in this pool.
        if age_s + (time.monotonic() - claimed) > self.timeout_s:
            answer, state = None, "expired"       # its sender answered 503 already
        else:
            try:
                answer, state = {"ok": self.handler(kind, json.loads(payload))}, "done"
            except C2DError as exc:
                answer, state = {"error": error_to_dict(exc)}, "done"
            except Exception as exc:  # noqa: BLE001 - the sender gets a 500, the log the trace
                log.exception("cluster command %s failed", kind)
                answer, state = {"error": {"error": "internal-error", "message": str(exc)[:200]}}, "done"
        try:
            with self.engine.begin() as conn:
                conn.execute(commands.update().where(commands.c.id == command_id)
                             .values(state=state, result=json.dumps(answer) if answer else None))
        except sa.exc.SQLAlchemyError:
            log.exception("the answer to cluster command %s could not be stored", command_id)

    def _sweep(self) -> None:
        if time.monotonic() - self._swept < 60:
            return
        self._swept = time.monotonic()
        with self.engine.begin() as conn:
            conn.execute(commands.delete().where(commands.c.node == self.node,
                                                 commands.c.state.in_(("done", "expired")),
                                                 commands.c.created_at < _STORE_NOW - KEEP_S))

    def _run(self) -> None:
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(self.conninfo, autocommit=True, **KEEPALIVES)
                    conn.execute(f"LISTEN {CHANNEL}")
                self.claim()
                self._sweep()
                for _ in conn.notifies(timeout=self.poll_s, stop_after=1):
                    pass
            except (psycopg.Error, sa.exc.SQLAlchemyError) as exc:
                log.warning("cluster commands: the store does not answer: %s", str(exc).strip()[:200])
                if conn is not None:
                    conn.close()
                conn = None
                self._stop.wait(self.poll_s)
        if conn is not None:
            conn.close()
