"""A small HTTP/1.1 keep-alive client for the load generator.

The benchmark sends hundreds of requests per second from a Python process
that shares two cores with Asterisk, the SIP peers and the service. A full
client (httpx) spends about a millisecond of CPU per request; this one writes
the request bytes and reads a ``Content-Length`` (or chunked) answer on a
pool of persistent connections, so the generator steals as little CPU as
possible from what it measures. Both the service's REST API and ARI (the
baseline) go through the same client, so its cost is the same on both sides.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from urllib.parse import urlencode


class HttpError(Exception):
    """The server closed the connection or sent something that is not HTTP."""


class HttpPool:
    """Persistent connections to one ``host:port``; at most ``max_conns`` requests in flight.

    ``auth``: (user, password) for Basic authentication, or None.
    """

    def __init__(self, host: str, port: int, auth: tuple[str, str] | None = None,
                 max_conns: int = 32):
        self.host, self.port = host, port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._sem = asyncio.Semaphore(max_conns)
        self._auth = ""
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self._auth = f"Authorization: Basic {token}\r\n"

    async def close(self) -> None:
        """Close every idle connection."""
        while self._idle:
            _, writer = self._idle.pop()
            writer.close()

    async def request(self, method: str, path: str, *, params: dict | None = None,
                      json_body: object = None) -> tuple[int, bytes, float]:
        """Send one request; return (status, body, time the request was written, epoch s).

        A reused connection that the server closed while idle is retried once
        on a new one (nothing was read from it, so nothing was processed).
        """
        if params:
            path = path + "?" + urlencode(params)
        body = b"" if json_body is None else json.dumps(json_body, separators=(",", ":")).encode()
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self._auth}"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        async with self._sem:
            for attempt in (0, 1):
                reused = bool(self._idle) and attempt == 0
                if reused:
                    reader, writer = self._idle.pop()
                else:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                sent_at = time.time()
                try:
                    writer.write(head + body)
                    status, data, keep = await self._read_response(reader)
                except (HttpError, OSError, asyncio.IncompleteReadError) as exc:
                    writer.close()
                    if reused and attempt == 0 and isinstance(exc, (HttpError, ConnectionError,
                                                                    asyncio.IncompleteReadError)):
                        # The server closed idle connections: drop them all, retry on a new one.
                        await self.close()
                        continue
                    raise HttpError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
                if keep:
                    self._idle.append((reader, writer))
                else:
                    writer.close()
                return status, data, sent_at
        raise HttpError(f"{method} {path}: no answer")  # pragma: no cover

    @staticmethod
    async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
        line = await reader.readline()
        if not line:
            raise HttpError("connection closed")
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise HttpError(f"bad status line {line[:60]!r}")
        status = int(parts[1])
        headers: dict[bytes, bytes] = {}
        while True:
            h = await reader.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.partition(b":")
            headers[k.strip().lower()] = v.strip()
        keep = headers.get(b"connection", b"").lower() != b"close" and parts[0] != b"HTTP/1.0"
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            chunks = []
            while True:
                size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    await reader.readline()
                    break
                chunks.append(await reader.readexactly(size))
                await reader.readline()
            return status, b"".join(chunks), keep
        length = headers.get(b"content-length")
        if length is None:
            return status, await reader.read(), False
        return status, await reader.readexactly(int(length)), keep
