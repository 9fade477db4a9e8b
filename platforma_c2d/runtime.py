"""The composition root: builds every object of the service and wires them.

``Runtime`` owns the telephony thread — one asyncio event loop that runs the
ARI event stream, the call engine and every ARI request (docs/architecture.md).
The HTTP layer gets only ``runtime.service``.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from platforma_c2d.ari.client import AriClient
from platforma_c2d.ari.events import EventStream
from platforma_c2d.calls import hep
from platforma_c2d.calls.engine import CallEngine
from platforma_c2d.calls.hep import RetryAfterLog
from platforma_c2d.calls.pacing import TrunkPacer
from platforma_c2d.calls.policy import Policy
from platforma_c2d.calls.recovery import reconcile
from platforma_c2d.calls.trunk_leg import settle_trunk_legs
from platforma_c2d.calls.connected_line import settle_connected_line
from platforma_c2d.calls.native import settle_bridging
from platforma_c2d.calls.service import CallService
from platforma_c2d.calls.stasis import StasisApp
from platforma_c2d.clid.picker import ClidPicker
from platforma_c2d.cluster.role import cluster_service
from platforma_c2d.config import Config
from platforma_c2d.config.checks import split_listen
from platforma_c2d.metrics import Metrics
from platforma_c2d.store.clids import ClidStore
from platforma_c2d.store.journal import Journal
from platforma_c2d.store.writer import JournalWriter
from platforma_c2d.store.retention import Retention, RetentionThread
from platforma_c2d.store.outbox import Outbox
from platforma_c2d.webhooks.delivery import WebhookDelivery

log = logging.getLogger(__name__)


class Runtime:
    """Everything ``platforma-c2d serve`` runs besides the HTTP server.

    ``start()`` opens the journal and starts the telephony thread, which
    connects to ARI (and keeps reconnecting); ``stop()`` ends it. Active
    calls are left in Asterisk on stop: the next start adopts them (SPEC §9).
    """

    def __init__(self, config: Config):
        self.config = config
        self.metrics = Metrics()
        self.journal = Journal(config.store.url, node=config.cluster.node)
        self.writer = JournalWriter(self.journal)
        days = config.store.retention_days
        self.retention = RetentionThread(Retention(self.journal.engine, days)) if days else None
        self.outbox = Outbox(self.journal.engine)
        self.webhooks = WebhookDelivery(self.outbox, config.webhooks, self.metrics)
        a = config.ari
        self.ari = AriClient(a.url, a.username, a.password, a.app, a.request_timeout_s,
                             requests=a.requests)
        t = config.trunk
        self.pacer = TrunkPacer(t.max_calls_per_second, t.max_wait_s, t.hold_after_503_s,
                                on_waiting=self.metrics.trunk_waiting.set)
        self.engine = CallEngine(self.ari, self.journal, config.dial, self.metrics, self.writer,
                                 self.pacer)
        self.policy = Policy(config.clid, config.policy)
        self.picker = ClidPicker(config.clid, ClidStore(self.journal.engine),
                                 registry=self.metrics.registry)
        self.stasis = StasisApp(self.engine, self.ari, self.picker, self.policy,
                                config.limits.max_active_calls_per_agent,
                                config.limits.max_active_calls)
        self.events = EventStream(a.url, a.username, a.password, a.app, self.stasis.dispatch,
                                  self._connected, self._disconnected, a.reconnect_max_backoff_s,
                                  sockets=self.ari.socket)
        self.loop = asyncio.new_event_loop()
        service_args = (config, self.engine, self.journal, self.policy, self.loop,
                        lambda: self.events.connected, self.picker)
        self.cluster = None
        if config.cluster.enabled:
            self.service, self.cluster = cluster_service(self, service_args)
        else:
            self.service = CallService(*service_args, webhooks=self.webhooks)
        self._thread = threading.Thread(target=self._run, name="telephony", daemon=True)
        self._task: asyncio.Task | None = None
        self._stopping = False

    async def _connected(self) -> None:
        self.metrics.ari_connected.set(1)
        if self.events.connects > 1:
            self.metrics.ari_reconnects.inc()
        await self.stasis.filter_events()
        self.engine.dial = await settle_trunk_legs(self.ari, self.config.dial, self.engine.dial)
        self.engine.connected_line_sub = await settle_connected_line(self.ari, self.engine.connected_line_sub)
        self.engine.native.in_use = await settle_bridging(self.ari, self.engine.dial,
                                                          self.engine.native.in_use)
        await reconcile(self.engine, self.ari, self.stasis)

    async def _disconnected(self) -> None:
        self.metrics.ari_connected.set(0)
        if self._stopping:
            log.info("ARI event socket closed (stopping)")
        else:
            log.warning("ARI event socket lost; reconnecting")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        capture = None
        if self.config.trunk.hep_listen:
            self.pacer.use_capture(RetryAfterLog())
            try:
                capture = self.loop.run_until_complete(
                    hep.listen(*split_listen(self.config.trunk.hep_listen), self.pacer.refusals,
                               hep.asterisk_addresses(self.config.ari.url)))
            except OSError as exc:
                log.error("[trunk] hep_listen %s: cannot listen (%s); a carrier's 503 holds the "
                          "trunk for [trunk] hold_after_503_s", self.config.trunk.hep_listen, exc)
        self._task = self.loop.create_task(self.events.run())
        self.loop.run_until_complete(self._task)
        if capture is not None:
            capture.close()
        self.loop.run_until_complete(self.ari.close())

    def start(self) -> None:
        """Start the telephony thread, the webhook delivery thread and the journal's retention
        (returns at once)."""
        if self.cluster is not None:
            self.cluster.start()    # standby until it holds the node's lock (cluster/role.py)
            return
        self._thread.start()
        self.webhooks.start()
        if self.retention is not None:
            self.retention.start()

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until ARI is connected or ``timeout_s`` seconds passed; returns connected."""
        import time

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.events.connected:
                return True
            time.sleep(0.05)
        return self.events.connected

    def stop(self) -> None:
        """Stop the event stream and the thread; write what is queued; close the journal. Idempotent."""
        self._stopping = True
        if self.cluster is not None:
            self.cluster.stop_commands()    # none may wait on a loop that is stopping
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.events.stop(), self.loop).result(timeout=10)
            self._thread.join(timeout=10)
        if self.cluster is not None:
            self.cluster.stop()
        if self.retention is not None:
            self.retention.stop()
        self.writer.close()
        self.webhooks.stop()
        self.journal.close()
