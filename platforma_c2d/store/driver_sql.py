"""The journal's hot statements compiled once per database and run through the driver's own execute.

SQLAlchemy Core executes a statement object in three parts: it builds the
statement's cache key (a walk of the whole statement, every time), looks
the compiled form up, and turns the parameters into the driver's; only
then does the driver run it. For the few statements the journal's writer
sends with every record (the update of a call's row, its history row, its
event) that work was most of a record's cost when each record is its own
transaction (docs/performance.md, "Trial: the journal's cost per call").

A :class:`DriverStatement` compiles its statement for a database once, then
hands the SQL text and the parameters in the driver's own form straight to
``Connection.exec_driver_sql``: the same connection, transaction, error
translation (``sqlalchemy.exc.DBAPIError``), disconnect handling and event
hooks as any other statement, without the per-execution walk.
"""

from __future__ import annotations

import operator
import threading
from typing import Any

import sqlalchemy as sa


class _Compiled:
    """One statement compiled for one dialect: its SQL text and how to order its parameters."""

    __slots__ = ("sql", "fixed", "processors", "order")

    def __init__(self, statement: sa.Executable, dialect: sa.Dialect, keys: tuple[str, ...] | None):
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys is not None else None)
        self.sql = str(compiled)
        #: parameters whose value the statement holds itself (a literal compared with)
        self.fixed = {name: bind.effective_value for bind, name in compiled.bind_names.items()
                      if not bind.required}
        #: the dialect's conversions of some types (SQLite: Float), by parameter name
        self.processors = dict(compiled._bind_processors)
        names = list(compiled.positiontup) if compiled.positional else None
        #: positional drivers (SQLite's ``?``): the values in placeholder order; else a mapping
        self.order = None
        if names:
            getter = operator.itemgetter(*names)
            self.order = getter if len(names) > 1 else (lambda params, _g=getter: (_g(params),))

    def parameters(self, params: dict) -> Any:
        """``params`` (bind name → value) in the form the driver takes."""
        if self.fixed:
            params = {**self.fixed, **params}
        if self.processors:
            params = dict(params)
            for name, process in self.processors.items():
                if name in params:
                    params[name] = process(params[name])
        return self.order(params) if self.order is not None else params


class DriverStatement:
    """A SQLAlchemy statement run with :meth:`sqlalchemy.engine.Connection.exec_driver_sql`.

    ``statement``: an insert, update or select whose parameters are all
    named bind parameters (``sa.bindparam``; an insert's are its columns);
    ``keys``: for an insert, the columns it sets (the rest are left to the
    database), else None; ``execution_options``: passed with each execution
    (``preserve_rowcount=True`` where an insert's row count is read).
    Compiled on its first use on each kind of database (thread-safe), so one
    object serves SQLite and PostgreSQL. The parameters are passed as they
    are, after the dialect's own type conversions, so they must be what
    the columns take (str, int, float, None): no Python-side column
    defaults are filled in.
    """

    def __init__(self, statement: sa.Executable, keys: tuple[str, ...] | None = None, **execution_options):
        self.statement, self.keys = statement, keys
        self.execution_options = execution_options or None
        self._by_dialect: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def compiled(self, dialect: sa.Dialect) -> _Compiled:
        """The statement compiled for ``dialect``, compiled once."""
        found = self._by_dialect.get(dialect.name)
        if found is None:
            with self._lock:
                found = self._by_dialect.get(dialect.name) or _Compiled(self.statement, dialect, self.keys)
                self._by_dialect[dialect.name] = found
        return found

    def sql(self, dialect: sa.Dialect) -> str:
        """The SQL text sent to ``dialect``'s database."""
        return self.compiled(dialect).sql

    def execute(self, conn: sa.Connection, params: dict) -> sa.CursorResult:
        """Run it once on ``conn`` with ``params`` (bind name → value). Raises
        ``sqlalchemy.exc.DBAPIError`` (a ``SQLAlchemyError``) when the database refuses it."""
        compiled = self.compiled(conn.dialect)
        return conn.exec_driver_sql(compiled.sql, compiled.parameters(params), self.execution_options)

    def execute_many(self, conn: sa.Connection, rows: list[dict]) -> None:
        """Run it for each of ``rows`` in order, as one driver call (``executemany``); nothing
        for no rows. Raises ``sqlalchemy.exc.DBAPIError`` as :meth:`execute`."""
        if not rows:
            return
        compiled = self.compiled(conn.dialect)
        if len(rows) == 1:
            conn.exec_driver_sql(compiled.sql, compiled.parameters(rows[0]), self.execution_options)
        else:
            conn.exec_driver_sql(compiled.sql, [compiled.parameters(r) for r in rows], self.execution_options)
