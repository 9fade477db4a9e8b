"""The FastAGI server: a bounded, threaded TCP server (SPEC sections 6, 8).

One thread per connection. Until its peer has shown the secret a
connection is one of at most ``[agi] max_unauthenticated``, with
``[agi] auth_timeout_s`` from connect to answer; then it is one of at most
``[agi] max_connections`` sessions (:mod:`platforma_c2d.agi.slots`), so
connections that cannot authenticate never take the places of Asterisk's
calls. A session beyond that cap is closed: Asterisk's ``AGI()`` then
fails, ``C2D_STATUS`` stays empty and the sample dialplan rejects the call
with 503, the same as when the server is down. Each session reads with a
timeout of ``[agi] read_timeout_s`` per read and
:data:`SESSION_TIMEOUT_FACTOR` times that for the whole session, so a
silent or slow peer holds one slot for a bounded time and never delays the
others.

Threads and state: a session owns its call from start to end (nothing is
shared between sessions but the journal, whose database serialises the
writes), so no lock is needed here.
"""

from __future__ import annotations

import logging
import signal
import socket
import socketserver
import threading

from platforma_c2d.agi.channel import AgiChannel, AgiClosed, LineWriter
from platforma_c2d.agi.follow import ChannelFollow
from platforma_c2d.agi.scripts import AgiScripts
from platforma_c2d.agi.slots import SessionSlots
from platforma_c2d.agi.trust import SAMPLE_SECRET, AgiRefused
from platforma_c2d.calls.policy import Policy
from platforma_c2d.clid.picker import ClidPicker
from platforma_c2d.config import Config
from platforma_c2d.config.checks import mask_url
from platforma_c2d.logs import log_started, log_stopped
from platforma_c2d.store.clids import ClidStore
from platforma_c2d.store.journal import Journal, store_problem

log = logging.getLogger("platforma_c2d.agi")

#: A whole session may read for at most this many times ``read_timeout_s``.
SESSION_TIMEOUT_FACTOR = 3
#: ``C2D_STATUS`` of a refused session (forged environment, wrong secret,
#: answers out of step): the sample dialplan answers it with 403.
STATUS_UNTRUSTED = "untrusted-session"


class _Session(socketserver.BaseRequestHandler):
    """One FastAGI connection: read the environment, run the script."""

    server: "AgiServer"

    def handle(self) -> None:
        srv = self.server
        sock: socket.socket = self.request
        trusted: list[bool] = []

        def on_trusted() -> None:
            why_not = srv.slots.trusted(sock)
            if why_not is not None:
                raise AgiClosed(f"refused: {why_not} ([agi] max_connections reached; "
                                "Asterisk reports 'Couldn't connect' or the dialplan answers 503)")
            trusted.append(True)
            agi.reader.set_session_timeout(srv.read_timeout_s * SESSION_TIMEOUT_FACTOR)

        try:
            # Until the secret is shown: the short deadline of authentication.
            agi = AgiChannel.on_socket(sock, srv.read_timeout_s, srv.auth_timeout_s)
            srv.scripts.handle(agi, on_trusted=on_trusted)
        except AgiRefused as exc:
            log.warning("AGI session from %s:%s refused: %s", *self.client_address[:2], exc)
            _tell_refused(sock, srv.read_timeout_s)
        except AgiClosed as exc:
            log.warning("AGI session from %s:%s dropped: %s", *self.client_address[:2], exc)
        except Exception:  # one bad session must never stop the server
            log.exception("AGI session from %s:%s failed", *self.client_address[:2])
        finally:
            srv.slots.ended(sock, bool(trusted))


def _tell_refused(sock: socket.socket, timeout_s: float) -> None:
    """Set ``C2D_STATUS`` to :data:`STATUS_UNTRUSTED` without reading the
    answer (the session is not trusted to answer in step), best effort."""
    try:
        LineWriter(sock, timeout_s).write(f'SET VARIABLE "C2D_STATUS" "{STATUS_UNTRUSTED}"\n')
    except AgiClosed:
        pass


class AgiServer(socketserver.ThreadingTCPServer):
    """The FastAGI server.

    ``address``: ``(host, port)`` to listen on (IPv4 or IPv6 host);
    ``scripts``: what runs for each session; ``max_connections``: sessions
    that showed the secret served at once (more are closed);
    ``read_timeout_s``: seconds per read/send; ``max_unauthenticated``:
    connections at once that have not shown it yet (the oldest is closed
    for a new one); ``auth_timeout_s``: seconds from connect to show it.
    Raises ``OSError`` when the address cannot be bound.
    ``server_close()`` waits for the running sessions (bounded by their
    timeouts).
    """

    allow_reuse_address = True
    daemon_threads = False
    block_on_close = True
    #: listen backlog: a burst of calls queues here while sessions start
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], scripts: AgiScripts, *,
                 max_connections: int, read_timeout_s: float,
                 max_unauthenticated: int = 256, auth_timeout_s: float = 5.0):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.scripts = scripts
        self.read_timeout_s = read_timeout_s
        self.auth_timeout_s = auth_timeout_s
        self.max_connections = max_connections
        self.slots = SessionSlots(max_unauthenticated, max_connections)
        #: the ARI client of the sessions' subscriptions, closed with the server (build_server)
        self.follow: ChannelFollow | None = None
        super().__init__(address, _Session)

    def server_close(self) -> None:
        """Wait for the running sessions (see the class), then close the ARI client."""
        super().server_close()
        if self.follow is not None:
            self.follow.close()

    def process_request(self, request, client_address) -> None:
        """Count the connection as unauthenticated and serve it in a new thread."""
        self.slots.connected(request, f"{client_address[0]}:{client_address[1]}")
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.ended(request, False)
            self.shutdown_request(request)
            raise

    def handle_error(self, request, client_address) -> None:
        """Log (never print) an error that escaped a session."""
        log.exception("AGI session from %s failed", client_address)


def build_server(cfg: Config, journal: Journal) -> AgiServer:
    """The server of ``cfg.agi`` with the scripts wired to ``journal`` and
    ``cfg.clid`` / ``cfg.policy`` (the composition root of ``agi``). Binds
    the listening socket; raises ``OSError`` when that fails."""
    picker = ClidPicker(cfg.clid, ClidStore(journal.engine))
    follow = ChannelFollow(cfg.ari)
    scripts = AgiScripts(journal, picker, Policy(cfg.clid, cfg.policy), dial=cfg.dial,
                         secret=cfg.agi.secret, follow=follow.subscribe,
                         limits=cfg.limits)
    try:
        server = AgiServer((cfg.agi.host, cfg.agi.port), scripts,
                           max_connections=cfg.agi.max_connections,
                           read_timeout_s=cfg.agi.read_timeout_s,
                           max_unauthenticated=cfg.agi.max_unauthenticated,
                           auth_timeout_s=cfg.agi.auth_timeout_s)
    except OSError:
        follow.close()
        raise
    server.follow = follow
    return server


def serve_agi(cfg: Config) -> int:
    """Serve FastAGI on ``cfg.agi.listen`` until SIGTERM or SIGINT.

    Must run in the main thread (it installs the signal handlers). Returns
    0 after a signal (running sessions are finished first), 1 when the
    journal (``cfg.store.url``) cannot be opened or the address cannot be
    bound (the reason is logged).
    """
    try:
        journal = Journal(cfg.store.url, node=cfg.cluster.node)
    except Exception as exc:  # SQLAlchemy or OS error: say it in one line
        log.error("cannot open the call journal: %s", store_problem(cfg.store.url, exc))
        return 1
    try:
        server = build_server(cfg, journal)
    except OSError as exc:
        log.error("cannot listen on %s: %s", cfg.agi.listen, exc.strerror or exc)
        journal.close()
        return 1

    stop = threading.Event()
    stopped_by: list[int] = []

    def _on_signal(signum, _frame):
        stopped_by.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    loop = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                            name="agi-accept", daemon=True)
    loop.start()
    log.info("FastAGI listening on %s (scripts click2dial, click2dial-hangup; "
             "max %d sessions)", cfg.agi.listen, cfg.agi.max_connections)
    log_started("agi", listen=f"agi://{cfg.agi.listen}", store=mask_url(cfg.store.url))
    if cfg.agi.secret in ("", SAMPLE_SECRET):
        log.warning("agi.secret is %s: any process that reaches %s can journal calls and end "
                    "AGI calls; set a secret of your own (docs/security.md)",
                    "not set" if not cfg.agi.secret else "the sample", cfg.agi.listen)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.shutdown()
        server.server_close()
        journal.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("FastAGI server stopped")
    log_stopped("agi", stopped_by[0] if stopped_by else None)
    return 0
