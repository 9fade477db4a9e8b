"""Who may hold a FastAGI session slot (docs/security.md, "The FastAGI secret").

A connection that has not shown the secret yet costs a thread but must
never keep Asterisk's own sessions out. So the server counts two kinds
apart:

* **unauthenticated** connections, from accept until the peer answered the
  secret's challenge: at most ``max_unauthenticated`` at once, each with a
  short deadline (``[agi] auth_timeout_s``, enforced by the session's
  reader). When they are all taken, the oldest is closed to make room for
  the new one: a peer that connects and stays silent holds its place only
  until newer connections arrive, and Asterisk, which sends its
  environment and answers the challenge within milliseconds, is through
  long before a flood of connections reaches it.
* **sessions** that showed the secret: at most ``max_connections``, each
  with the whole session's deadline. One past the cap is closed.

Thread-safe: the accept thread and the session threads call in; the
counts are request accounting of the server, kept under one lock here.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import OrderedDict

log = logging.getLogger("platforma_c2d.agi")


class SessionSlots:
    """The two counts of :mod:`this module <platforma_c2d.agi.slots>`.

    ``max_unauthenticated``: connections at once that have not shown the
    secret; ``max_sessions``: sessions at once that have. Both positive.
    """

    def __init__(self, max_unauthenticated: int, max_sessions: int):
        self.max_unauthenticated, self.max_sessions = max_unauthenticated, max_sessions
        self._pending: OrderedDict[int, socket.socket] = OrderedDict()
        self._sessions = 0
        self._lock = threading.Lock()

    def connected(self, sock: socket.socket, peer: str) -> None:
        """Count a new connection as unauthenticated, closing the oldest
        unauthenticated one (its reads then fail) when all are taken."""
        with self._lock:
            evicted = None
            if len(self._pending) >= self.max_unauthenticated:
                _, evicted = self._pending.popitem(last=False)
            self._pending[id(sock)] = sock
        if evicted is not None:
            log.warning("AGI connection dropped before it showed the secret: %d connections "
                        "without it already ([agi] max_unauthenticated); newest from %s",
                        self.max_unauthenticated, peer)
            try:
                evicted.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass   # closed by its peer meanwhile

    def trusted(self, sock: socket.socket) -> str | None:
        """The connection showed the secret: move it to the sessions. None
        when done; else why not (nothing counted): ``max_sessions`` are
        running, or it was dropped as unauthenticated meanwhile."""
        with self._lock:
            if self._pending.pop(id(sock), None) is None:
                return "dropped before it showed the secret"
            if self._sessions >= self.max_sessions:
                return f"{self.max_sessions} sessions already running"
            self._sessions += 1
            return None

    def ended(self, sock: socket.socket, was_trusted: bool) -> None:
        """The connection ended (``was_trusted``: :meth:`trusted` took it into the
        sessions, that is returned None)."""
        with self._lock:
            self._pending.pop(id(sock), None)
            if was_trusted:
                self._sessions -= 1

    @property
    def counts(self) -> tuple[int, int]:
        """``(unauthenticated, sessions)`` now."""
        with self._lock:
            return len(self._pending), self._sessions
