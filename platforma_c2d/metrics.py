"""Prometheus metrics of the service (SPEC §2 ``GET /metrics``).

One ``CollectorRegistry`` per service instance (no module-level globals), so
tests and several apps in one process do not share counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

SETUP_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """The service's counters, gauges and histograms.

    * ``c2d_calls_total{origin,reason}`` — calls ended, by origin and reason;
    * ``c2d_calls_started_total{origin}`` — calls started (refused ones too:
      started minus ended is the number of active calls);
    * ``c2d_calls_active`` — calls not yet ended;
    * ``c2d_call_setup_seconds{phase}`` — ``agent_answer`` (request → agent
      answered), ``callee_answer`` (agent answered → callee answered),
      ``bridge`` (callee answered → both in the bridge), seconds;
    * ``c2d_ari_connected`` — 1 while the ARI event socket is up;
    * ``c2d_ari_reconnects_total`` — successful reconnects of that socket;
    * ``c2d_requests_rejected_total{error}`` — API requests refused, by error id;
    * ``c2d_trunk_legs_waiting`` — legs waiting for their turn on the trunk
      (``[trunk] max_calls_per_second``, a carrier's hold; SPEC §3.8);
    * ``c2d_trunk_refused_total{sip_code}`` — trunk legs the carrier refused
      with a 5xx before any answer;
    * ``c2d_events_total`` — call events created (SPEC §10; every process's,
      counted as the webhook worker reads them);
    * ``c2d_webhook_delivered_total{endpoint}``, ``c2d_webhook_retries_total{endpoint}``,
      ``c2d_webhook_given_up_total{endpoint}`` — deliveries answered 2xx,
      attempts that failed and will be tried again, deliveries given up;
    * ``c2d_webhook_pending`` — deliveries not yet done;
      ``c2d_webhook_oldest_pending_seconds`` — the age of the oldest, seconds.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.calls_ended = Counter("c2d_calls", "Calls ended, by origin and reason",
                                   ["origin", "reason"], registry=r)
        self.calls_started = Counter("c2d_calls_started", "Calls accepted, by origin",
                                     ["origin"], registry=r)
        self.active = Gauge("c2d_calls_active", "Calls not yet ended", registry=r)
        self.setup = Histogram("c2d_call_setup_seconds", "Call set-up phases in seconds",
                               ["phase"], buckets=SETUP_BUCKETS, registry=r)
        self.ari_connected = Gauge("c2d_ari_connected", "1 while the ARI event socket is connected",
                                   registry=r)
        self.ari_reconnects = Counter("c2d_ari_reconnects", "ARI event socket reconnects",
                                      registry=r)
        self.rejected = Counter("c2d_requests_rejected", "API requests refused, by error id",
                                ["error"], registry=r)
        self.trunk_waiting = Gauge("c2d_trunk_legs_waiting", "Legs waiting for their turn on the trunk",
                                   registry=r)
        self.trunk_refused = Counter("c2d_trunk_refused", "Trunk legs refused by the carrier (SIP 5xx)",
                                     ["sip_code"], registry=r)

        self.events = Counter("c2d_events", "Call events created", registry=r)
        self.webhook_delivered = Counter("c2d_webhook_delivered", "Webhook deliveries answered 2xx",
                                         ["endpoint"], registry=r)
        self.webhook_retries = Counter("c2d_webhook_retries", "Webhook attempts failed, to be retried",
                                       ["endpoint"], registry=r)
        self.webhook_given_up = Counter("c2d_webhook_given_up", "Webhook deliveries given up",
                                        ["endpoint"], registry=r)
        self.webhook_pending = Gauge("c2d_webhook_pending", "Webhook deliveries not yet done", registry=r)
        self.webhook_oldest = Gauge("c2d_webhook_oldest_pending_seconds",
                                    "Age of the oldest pending webhook delivery, seconds", registry=r)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
