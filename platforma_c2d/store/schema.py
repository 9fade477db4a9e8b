"""The store's schema and its migrations (Alembic), for SQLite and PostgreSQL alike.

Every table lives in one of three SQLAlchemy ``MetaData`` (the journal's,
the outbox's, the CLID pools'); :func:`all_metadata` is their union, the
models the migrations must produce (a test compares the two). The
migrations ship in ``platforma_c2d/store/migrations`` and run when the
service, the FastAGI server or ``platforma-c2d events`` opens the store
(:func:`migrate`), so an upgrade never asks an administrator to drop the
journal.

A journal made before migrations existed (no ``alembic_version`` table)
is brought to the baseline in place by the baseline revision itself
(``migrations/versions/0001_baseline.py``: missing tables created, missing
columns added, missing indexes built, rows kept), then upgraded like any
other.
"""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).with_name("migrations")
#: PostgreSQL advisory lock key held while one process migrates (others wait).
MIGRATION_LOCK = 0x0C2D5C4E


def all_metadata() -> list[sa.MetaData]:
    """The models of every table of the store: journal, outbox, CLID pools, cluster commands."""
    from platforma_c2d.store import clids, cluster_tables, idempotency, journal, outbox  # noqa: F401 - idempotency_keys in journal.metadata

    return [journal.metadata, outbox.metadata, clids.metadata, cluster_tables.metadata]


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration for the migrations shipped in the package (no ``alembic.ini``)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision this release ships."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: sa.Engine) -> str | None:
    """The revision the store at ``engine`` is at; None when it has none (empty, or
    made before migrations). Raises ``sqlalchemy.exc.SQLAlchemyError``."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def state(engine: sa.Engine) -> str | None:
    """None when the store is at this release's revision; else one line saying how
    it is behind (or ahead: written by a newer release). Reads only."""
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return None
    if current is None:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("calls"):
                return "empty: its tables are created at start"
        return f"made before schema migrations: upgraded in place to {head} at start"
    script = ScriptDirectory.from_config(alembic_config())
    if current not in {rev.revision for rev in script.walk_revisions()}:
        return f"at revision {current}, unknown to this release (written by a newer one?)"
    return f"at revision {current}, behind {head}: upgraded at start"


def migrate(engine: sa.Engine, attempts: int = 3) -> None:
    """Bring the store at ``engine`` to this release's revision (idempotent).

    On PostgreSQL an advisory lock makes a second process (the FastAGI
    server, another instance) wait until the first has migrated; on SQLite
    a process that loses the race tries again (``attempts``). Raises
    ``sqlalchemy.exc.SQLAlchemyError`` or Alembic's ``CommandError`` (a
    store at a revision this release does not know).
    """
    for attempt in range(attempts):
        try:
            with engine.connect() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
                    conn.commit()
                try:
                    _migrate(conn)
                finally:
                    if conn.dialect.name == "postgresql":
                        conn.rollback()
                        conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
                        conn.commit()
            return
        except sa.exc.OperationalError:
            if engine.dialect.name != "sqlite" or attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def _migrate(conn: sa.Connection) -> None:
    command.upgrade(alembic_config(conn), "head")
    conn.commit()


def check(url: str) -> tuple[str, str]:
    """What ``platforma-c2d check`` says of the schema of the store at ``url``: (level, line).

    ``level``: ``ok`` (at this release's revision, or nothing yet: made at
    start), ``WARN`` (behind: upgraded when the service starts) or ``FAIL``
    (at a revision this release does not know). Reads only: a SQLite file
    that does not exist is not created. Raises ``sqlalchemy.exc.SQLAlchemyError``.
    """
    engine_url = sa.engine.make_url(url)
    if engine_url.get_backend_name() == "sqlite" and engine_url.database not in (None, "", ":memory:") \
            and not Path(engine_url.database).exists():
        return "ok", f"store: schema made at start (revision {head_revision()})"
    engine = sa.create_engine(engine_url)
    try:
        behind = state(engine)
    finally:
        engine.dispose()
    if behind is None:
        return "ok", f"store: schema at revision {head_revision()}"
    if "unknown to this release" in behind:
        return "FAIL", f"store: schema {behind}"
    return ("ok" if behind.startswith("empty") else "WARN"), f"store: schema {behind}"
