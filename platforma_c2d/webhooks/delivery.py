"""Webhook delivery: the events of the store POSTed, signed, to every endpoint (SPEC §10).

One thread of its own (``webhooks``) with its own asyncio loop and one
aiohttp session: a slow or dead receiver costs the telephony thread
nothing, and holds at most ``[webhooks] max_in_flight_per_endpoint``
requests of its own (each at most ``timeout_s``), never another
endpoint's. Design and alternatives: docs/decisions/0008-call-events-and-webhooks.md.

The store is the queue. Every pass (every ``poll_s``; at once when an
attempt ends while due deliveries wait for a free place):

1. events not yet fanned out become delivery rows, one per matching
   endpoint and the call's own ``status_callback`` (``Outbox.fan_out``),
   in the transaction that marks the deliveries answered since the last
   pass; with no new event and nothing to mark, a pass reads only the
   newest event's id;
2. when something may have become due (rows were made, an attempt ended,
   a retry's time came, or a second passed while deliveries are pending),
   for each (endpoint, call) the oldest pending delivery, if due, is
   attempted — one at a time per (endpoint, call), so a call's events
   arrive in order at each endpoint;
3. a 2xx marks it delivered; anything else (status, timeout, refused
   connection) schedules it again with capped exponential backoff, until
   ``retry_for_s`` after it was made, when it is given up.

A delivery is marked only after the answer: a crash in between sends it
again after the restart (at least once; receivers deduplicate with
``X-Platforma-Event-Id``).
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import logging
import random
import threading
import time
from urllib.parse import urlsplit

import aiohttp

from platforma_c2d import __version__
from platforma_c2d.config import WebhooksConfig
from platforma_c2d.metrics import Metrics
from platforma_c2d.store.outbox import Outbox, event_json
from platforma_c2d.webhooks.signature import HEADER_EVENT_ID, HEADER_SIGNATURE, sign

log = logging.getLogger("platforma_c2d.webhooks")

CALLBACK = "status_callback"
BACKOFF_FIRST_S = 1.0
BACKOFF_CAP_S = 600.0
#: Bytes of a receiver's answer body read, at most (the rest is dropped with the connection).
MAX_ANSWER_READ = 64 * 1024
#: Seconds between looks for due deliveries while some may be pending and nothing
#: else calls for a look (rows made by another instance, or left by a failed pass).
LOOK_EVERY_S = 1.0
#: Seconds between passes when nothing is configured to deliver to (no endpoint, and no
#: ``allowed_url_prefixes``, so no call has a ``status_callback``): the passes then only
#: move the fan-out cursor (retention keeps what is not past it) and give up what an
#: earlier configuration left pending.
QUIET_POLL_S = 5.0
#: Events fanned out in one transaction at most.
FAN_OUT_BATCH = 500


def backoff_s(attempts: int, rng: random.Random | None = None) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: 1, 2, 4… capped at
    10 minutes, with ±20 % jitter so that retries to one receiver do not come in lockstep."""
    base = min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2 ** min(attempts - 1, 30))
    return base * (rng or random).uniform(0.8, 1.2)


class WebhookDelivery:
    """Delivers the stored events to ``config.endpoints`` and to calls' ``status_callback``.

    ``outbox``: the store's events and deliveries; ``config``: ``[webhooks]``;
    ``metrics``: counters and the backlog gauges; ``poll_s``: seconds between
    looks at the store when idle (events may come from another process,
    the FastAGI server), :data:`QUIET_POLL_S` when nothing is configured to
    deliver to. ``start()`` / ``stop()``.
    """

    def __init__(self, outbox: Outbox, config: WebhooksConfig, metrics: Metrics, poll_s: float = 0.2):
        self.outbox, self.config, self.metrics, self.poll_s = outbox, config, metrics, poll_s
        self.endpoints = {e.name: e for e in config.endpoints}
        self.backlog: collections.deque[tuple[float, int]] = collections.deque(maxlen=7)
        self._in_flight: dict[tuple[str, str], asyncio.Task] = {}
        self._per_target: collections.Counter[str] = collections.Counter()
        self._stopping = threading.Event()
        #: whether a pending delivery may be in the store: true at start, when a
        #: fan-out makes rows, and when the backlog (read every second) is not
        #: empty; while false, no pass looks for due deliveries
        self._maybe_pending = True
        #: delivered (a 2xx came back), not yet marked in the store: (row id, (endpoint,
        #: call id), target). Marked together at the next pass, in one transaction; the
        #: pair stays in flight until then, so its next event never overtakes the mark.
        self._marks: list[tuple[int, tuple[str, str], str]] = []
        #: when the next look for due deliveries is worth making (Unix seconds): at
        #: once after a fan-out made rows or an attempt ended, else at the next
        #: retry's time (``_retries``, a heap) or a second after the last look
        #: (rows another instance made), not on every pass
        self._look_at = 0.0
        self._retries: list[float] = []
        self._quiet = not (config.endpoints or config.allowed_url_prefixes)
        #: the last look left due deliveries unstarted (no free place): an attempt that
        #: ends then wakes the loop at once; else its mark waits for the next pass
        self._held_back = False
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)

    def start(self) -> None:
        """Start the delivery thread (returns at once)."""
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the requests in flight (at most ``timeout_s`` seconds); pending
        deliveries stay in the store for the next start. Idempotent."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    # --- which endpoints ---------------------------------------------------------
    def targets(self, event: dict, callback_url: str | None) -> list[tuple[str, str]]:
        """``[(endpoint name, url)]`` that get ``event`` (a row of ``events``)."""
        out = [(e.name, e.url) for e in self.config.endpoints
               if e.wants(event["type"], event["agent"], event["token_name"])]
        if callback_url:
            out.append((CALLBACK, callback_url))
        return out

    def _secret(self, delivery: dict) -> str | None:
        if delivery["endpoint"] == CALLBACK:
            return self.config.callback_secret or None
        endpoint = self.endpoints.get(delivery["endpoint"])
        return endpoint.secret if endpoint else None

    @staticmethod
    def _target(delivery: dict) -> str:
        """What a concurrency share is counted against: the endpoint, or a callback URL's origin."""
        if delivery["endpoint"] != CALLBACK:
            return delivery["endpoint"]
        parts = urlsplit(delivery["url"])
        return f"{CALLBACK}:{parts.scheme}://{parts.netloc}"

    # --- the loop --------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        connector = aiohttp.TCPConnector(limit=self.config.max_in_flight)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector,
                                         headers={"User-Agent": f"platforma-c2d/{__version__}"}) as session:
            next_gauge = 0.0
            self._wake = asyncio.Event()
            while not self._stopping.is_set():
                created = 0
                try:
                    created, rows = self._write_marks(fan_out=True)
                    if created:
                        self.metrics.events.inc(created)
                    if rows:
                        self._maybe_pending, self._look_at = True, 0.0
                    if self._maybe_pending and self._time_to_look():
                        self._look_at = time.time() + LOOK_EVERY_S
                        self._start_due(session)
                    if time.monotonic() >= next_gauge:
                        self._measure()
                        next_gauge = time.monotonic() + 1.0
                except Exception:  # noqa: BLE001 - the store may be busy or away: try again
                    log.exception("webhook delivery pass failed")
                    await asyncio.sleep(1.0)
                if created < FAN_OUT_BATCH:   # else more events wait to be fanned out: at once
                    try:
                        await asyncio.wait_for(self._wake.wait(),
                                               max(self.poll_s, QUIET_POLL_S) if self._quiet else self.poll_s)
                    except asyncio.TimeoutError:
                        pass
                    self._wake.clear()
            if self._in_flight:
                await asyncio.wait(list(self._in_flight.values()), timeout=self.config.timeout_s)
            try:
                self._write_marks()
            except Exception:  # noqa: BLE001 - not marked: sent again after the restart (at least once)
                log.exception("webhook deliveries not marked delivered")

    def _time_to_look(self) -> bool:
        """Whether this pass looks for due deliveries (see ``_look_at``)."""
        now = time.time()
        while self._retries and self._retries[0] <= now:
            heapq.heappop(self._retries)
            self._look_at = 0.0
        return now >= self._look_at

    def _write_marks(self, fan_out: bool = False) -> tuple[int, int]:
        """Mark the deliveries answered 2xx since the last pass as delivered, in one transaction,
        then let their (endpoint, call) pairs go on. With ``fan_out``, the same transaction
        fans out the new events (``Outbox.fan_out``, whose counts are returned; else
        ``(0, 0)``). Raises the store's error (the marks are kept for the next pass)."""
        marks, self._marks = self._marks, []
        ids = [delivery_id for delivery_id, _key, _target in marks]
        try:
            if fan_out:
                counts = self.outbox.fan_out(self.targets, FAN_OUT_BATCH, delivered=ids)
            else:
                self.outbox.delivered(*ids)
                counts = (0, 0)
        except Exception:
            self._marks = marks + self._marks
            raise
        for _id, key, target in marks:
            self._release(key, target)
            self.metrics.webhook_delivered.labels(key[0]).inc()
        return counts

    def _start_due(self, session: aiohttp.ClientSession) -> None:
        free = self.config.max_in_flight - len(self._in_flight)
        self._held_back = free <= 0
        if free <= 0:
            return
        cap = self.config.max_in_flight_per_endpoint
        at_cap = [t for t, n in self._per_target.items() if n >= cap]
        full = {t for t in at_cap if not t.startswith(CALLBACK + ":")}
        # A callback target is its URL's origin: every URL on that host, then "/".
        full_urls = {(CALLBACK, t.split(":", 1)[1] + "/") for t in at_cap if t.startswith(CALLBACK + ":")}
        page = self.outbox.due(time.time(), set(self._in_flight), limit=free, per_target=cap,
                               full=full, full_urls=full_urls)
        self._held_back = bool(full or full_urls) or len(page) >= free
        for delivery in page:
            target = self._target(delivery)
            if self._per_target[target] >= self.config.max_in_flight_per_endpoint:
                self._held_back = True
                continue
            key = (delivery["endpoint"], delivery["call_id"])
            self._per_target[target] += 1
            task = asyncio.get_running_loop().create_task(self._attempt(session, delivery))
            self._in_flight[key] = task
            task.add_done_callback(lambda t, key=key, target=target: self._done(key, target, t))

    def _done(self, key: tuple[str, str], target: str, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:   # the store failed: tried again later
            log.error("webhook delivery not recorded: %r", task.exception(), extra={"endpoint": key[0]})
        elif not task.cancelled() and task.result() is not None:    # delivered: marked at the next pass
            self._marks.append((task.result(), key, target))
            if self._held_back:
                self._wake.set()
            return
        self._release(key, target)

    def _release(self, key: tuple[str, str], target: str) -> None:
        """The pair's attempt is over and recorded: its next delivery may start."""
        self._in_flight.pop(key, None)
        self._per_target[target] -= 1
        self._look_at = 0.0
        if self._held_back:
            self._wake.set()

    async def _attempt(self, session: aiohttp.ClientSession, delivery: dict) -> int | None:
        """POST one delivery and record its outcome in the store; returns the row's id when a
        2xx came back (marked delivered by the next pass, with the others: ``_write_marks``)."""
        name = delivery["endpoint"]
        secret = self._secret(delivery)
        if secret is None:
            await asyncio.to_thread(self.outbox.give_up, delivery["id"], "endpoint not configured")
            self.metrics.webhook_given_up.labels(name).inc()
            return None
        body = event_json({"id": delivery["event_id"], "type": delivery["type"],
                           "at": delivery["at"], "call": delivery["call"]})
        headers = {"Content-Type": "application/json", HEADER_EVENT_ID: str(delivery["event_id"]),
                   HEADER_SIGNATURE: sign(secret, body)}
        try:
            async with session.post(delivery["url"], data=body, headers=headers,
                                    allow_redirects=False) as resp:
                # The status decides; of the body only a little is read (a receiver that
                # sends one without end must neither hold the delivery nor fill the memory).
                await resp.content.read(MAX_ANSWER_READ)
                error = None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:200] if str(exc) else type(exc).__name__
        if error is None:
            return delivery["id"]
        attempts = delivery["attempts"] + 1
        if time.time() - delivery["created_at"] >= self.config.retry_for_s:
            await asyncio.to_thread(self.outbox.give_up, delivery["id"], error)
            self.metrics.webhook_given_up.labels(name).inc()
            log.warning("webhook delivery given up after %d attempts: %s", attempts, error,
                        extra={"call_id": delivery["call_id"], "endpoint": name})
            return None
        next_at = time.time() + backoff_s(attempts)
        await asyncio.to_thread(self.outbox.retry, delivery["id"], next_at, error)
        heapq.heappush(self._retries, next_at)
        self.metrics.webhook_retries.labels(name).inc()
        log.info("webhook delivery failed (attempt %d): %s", attempts, error,
                 extra={"call_id": delivery["call_id"], "endpoint": name})
        return None

    def _measure(self) -> None:
        pending, oldest_s = self.outbox.backlog()
        # Nothing pending and nothing in flight: the passes stop asking for due rows
        # until a fan-out makes some (or another writer's rows show in the backlog).
        self._maybe_pending = pending > 0 or bool(self._in_flight)
        self.metrics.webhook_pending.set(pending)
        self.metrics.webhook_oldest.set(oldest_s)
        now = time.monotonic()
        if not self.backlog or now - self.backlog[-1][0] >= 10.0:
            self.backlog.append((now, pending))

    def health(self) -> dict:
        """``{"pending", "oldest_pending_s", "backlog_growing"}``: growing when the pending
        count rose at every one of the last six samples (10 s apart: a minute)."""
        pending, oldest_s = self.outbox.backlog()
        samples = [count for _, count in self.backlog]
        growing = len(samples) == self.backlog.maxlen and all(b > a for a, b in zip(samples, samples[1:]))
        return {"pending": pending, "oldest_pending_s": round(oldest_s, 3), "backlog_growing": growing}
