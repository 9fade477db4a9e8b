"""Alembic's environment: migrate the connection handed over in the config's attributes.

:func:`platforma_c2d.store.schema.migrate` passes the open connection
(``config.attributes["connection"]``); the ``alembic`` command line may
pass a URL instead (``-x url=sqlite:////var/lib/platforma-c2d/calls.sqlite3``).
"""

import sqlalchemy as sa
from alembic import context

from platforma_c2d.store.schema import all_metadata

config = context.config
target_metadata = all_metadata()


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
