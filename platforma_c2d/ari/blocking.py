"""The ARI client for a command that runs no event loop (``platforma-c2d check``).

The service's :class:`~platforma_c2d.ari.client.AriClient` is asynchronous;
a one-shot command asks its questions one after the other. ``BlockingAri``
runs each of the client's requests to its end on an event loop of its own,
so the command sends the very requests the service sends, with the same
errors (``AriError``, ``AriUnavailable``), and no second HTTP client is kept.
"""

from __future__ import annotations

import asyncio
import functools
import inspect

from platforma_c2d.ari.client import AriClient


class BlockingAri:
    """Every coroutine method of ``AriClient``, called as a plain function.

    ``BlockingAri(client).endpoint("PJSIP", "1001")`` returns what
    ``await client.endpoint("PJSIP", "1001")`` would, and raises what it
    raises. For one thread only. Use as a context manager, or call
    :meth:`close`: it closes the client's connections and the loop.
    """

    def __init__(self, client: AriClient):
        self.client = client
        self._loop = asyncio.new_event_loop()

    def __getattr__(self, name: str):
        method = getattr(self.client, name)
        if not inspect.iscoroutinefunction(method):
            return method

        @functools.wraps(method)
        def call(*args, **kwargs):
            return self._loop.run_until_complete(method(*args, **kwargs))

        return call

    def close(self) -> None:
        """Close the client's connection pool, then the loop."""
        if not self._loop.is_closed():
            self._loop.run_until_complete(self.client.close())
            self._loop.close()

    def __enter__(self) -> BlockingAri:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
