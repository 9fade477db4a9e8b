"""A TCP proxy between the service and Asterisk's HTTP port, for fault tests.

``cut(seconds)`` closes every proxied connection (REST and the ARI event
WebSocket) and refuses new ones for that long: the network blip of field
report C08, without touching Asterisk. ``refuse_rest(True)`` lets only the
event WebSocket through: REST requests over HTTP then fail, so a call that
still works sent its requests on the socket.
"""

from __future__ import annotations

import asyncio
import threading
import time


class TcpProxy:
    """Listens on 127.0.0.1:``port`` and forwards to ``target_host``:``target_port``."""

    def __init__(self, port: int, target_host: str = "127.0.0.1", target_port: int = 8088):
        self.port, self.target = port, (target_host, target_port)
        self.loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._down_until = 0.0
        self._rest_refused = False
        self._rest_writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._server = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        self.loop.run_forever()

    async def _pipe(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader, writer) -> None:
        if time.monotonic() < self._down_until:
            writer.close()
            return
        first = await reader.read(65536)    # the first request's line says what it is
        rest = not first.split(b"\r\n", 1)[0].startswith(b"GET /ari/events")
        if not first or (rest and self._rest_refused):
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        up_writer.write(first)
        mine = {writer, up_writer}
        self._writers |= mine
        if rest:
            self._rest_writers |= mine
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers -= mine
        self._rest_writers -= mine

    def refuse_rest(self, refused: bool) -> None:
        """With ``refused``: drop every connection but the event WebSocket's and refuse
        new ones (HTTP requests fail); without: let everything through again."""
        self._rest_refused = refused

        def drop() -> None:
            for w in list(self._rest_writers):
                w.transport.abort()

        if refused:
            self.loop.call_soon_threadsafe(drop)

    def cut(self, seconds: float) -> None:
        """Drop every connection now and refuse new ones for ``seconds``."""
        self._down_until = time.monotonic() + seconds

        def drop() -> None:
            for w in list(self._writers):
                w.transport.abort()

        self.loop.call_soon_threadsafe(drop)

    def close(self) -> None:
        """Stop the proxy."""
        self.cut(0)
        self.loop.call_soon_threadsafe(self._server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
