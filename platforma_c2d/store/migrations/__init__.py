"""The store's schema migrations (Alembic), shipped inside the package.

Run by :func:`platforma_c2d.store.schema.migrate` when the service starts;
a new one is written with ``alembic revision`` (docs/operations.md).
"""
