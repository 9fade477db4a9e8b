"""An instance's role in its node, wired into the service's runtime (SPEC §11).

A cluster instance starts as a **standby**: it serves the API (reads from
the store, placements and cancellations sent to the active instances as
commands) but does not connect to its Asterisk. When :class:`NodeLease`
takes the node's lock it becomes **active**: the telephony thread starts,
connects to ARI and reconciles the node's journalled calls as after a
restart (calls up are adopted, nothing is dialled twice), and the command
worker starts taking the node's commands.

An instance that holds a lock and loses the store **exits at once** (status
``EXIT_LOST_STORE``): it could no longer journal a call, and a standby may
already have taken over, so it must stop touching calls that very moment.
The service manager starts it again; it comes back as a standby.
"""

from __future__ import annotations

import logging
import os
import socket
import sys

from prometheus_client import Gauge

from platforma_c2d.cluster.commands import CommandWorker
from platforma_c2d.cluster.lease import NodeLease
from platforma_c2d.cluster.registrations import EndpointPublisher
from platforma_c2d.logs import drain

log = logging.getLogger("platforma_c2d.cluster")

#: Exit status of an instance that lost the store while it held a lock (EX_TEMPFAIL).
EXIT_LOST_STORE = 75


def instance_name(configured: str) -> str:
    """``[cluster] instance``, or the host name and the process id when it is empty (at most 32)."""
    return configured or f"{socket.gethostname().split('.')[0][:20]}-{os.getpid()}"


class ClusterRole:
    """The lease, the command worker and the role metrics of one instance.

    ``runtime``: the :class:`~platforma_c2d.runtime.Runtime` (its config,
    journal, service, webhooks, metrics); ``start_telephony``: starts its
    telephony thread (called once, when this instance becomes active);
    ``exit``: ends the process (``os._exit`` by default; tests pass their own).
    """

    def __init__(self, runtime, instance: str, start_telephony, exit=os._exit):
        cfg = runtime.config
        self.node, self.instance = cfg.cluster.node, instance
        self.publisher = None
        if cfg.cluster.agents_by == "registration":
            self.publisher = EndpointPublisher(runtime.ari, runtime.loop, runtime.journal.engine, self.node)
        self._start_telephony, self._exit = start_telephony, exit
        self.lease = NodeLease(cfg.store.url, self.node, instance, cfg.cluster.lease_check_s,
                               on_active=self._activate, on_lost=self._lost,
                               on_delivery=self._deliver)
        self.worker = CommandWorker(cfg.store.url, runtime.journal.engine, self.node, instance,
                                    runtime.service.run_command, timeout_s=cfg.cluster.command_timeout_s,
                                    threads=cfg.http.threads)
        reg = runtime.metrics.registry
        self.active_gauge = Gauge("c2d_cluster_active", "1 while this instance is its node's active one",
                                  ["node", "instance"], registry=reg).labels(self.node, instance)
        self.delivery_gauge = Gauge("c2d_cluster_delivering",
                                    "1 while this instance delivers the cluster's webhooks",
                                    ["node", "instance"], registry=reg).labels(self.node, instance)
        self.active_gauge.set(0)
        self.delivery_gauge.set(0)
        self._retention = runtime.retention
        self._on_delivery = runtime.webhooks.start

    @property
    def role(self) -> str:
        """``"standby"``, ``"active"`` or ``"lost"``."""
        return self.lease.role

    def _activate(self) -> None:
        self.active_gauge.set(1)
        self._start_telephony()
        self.worker.start()
        if self.publisher is not None:
            self.publisher.start()

    def _deliver(self) -> None:
        self.delivery_gauge.set(1)
        self._on_delivery()
        if self._retention is not None:     # one instance removes old calls, as one delivers
            self._retention.start()

    def _lost(self, why: str) -> None:
        self.active_gauge.set(0)
        log.critical("exiting: this instance held a lock of node %s and lost the store (%s); "
                     "it starts again as a standby", self.node, why,
                     extra={"fields": {"node": self.node, "instance": self.instance}})
        drain()                 # os._exit runs no exit handler: write the log lines now
        sys.stderr.flush()
        self._exit(EXIT_LOST_STORE)

    def start(self) -> None:
        """Start the lease (returns at once): standby until it takes the node's lock."""
        self.lease.start()

    def stop_commands(self) -> None:
        """Stop taking other instances' commands (first, while the telephony thread still runs)."""
        self.worker.stop()

    def stop(self) -> None:
        """Stop taking commands and publishing endpoints, and release the locks (a standby
        takes over at once): after the telephony thread stopped."""
        self.worker.stop()
        if self.publisher is not None:
            self.publisher.stop()
        self.lease.stop()


def cluster_service(runtime, service_args: tuple):
    """The call service and the role of a cluster instance of ``runtime``:
    (:class:`~platforma_c2d.cluster.service.ClusterCallService`, :class:`ClusterRole`).
    ``service_args``: :class:`~platforma_c2d.calls.service.CallService`'s positional arguments."""
    from platforma_c2d.cluster.commands import CommandBus
    from platforma_c2d.cluster.service import ClusterCallService

    cfg = runtime.config.cluster
    name = instance_name(cfg.instance)
    holder: list[ClusterRole] = []
    service = ClusterCallService(*service_args, webhooks=runtime.webhooks,
                                 bus=CommandBus(runtime.journal.engine, cfg.command_timeout_s,
                                                grace_s=runtime.config.ari.request_timeout_s * 3 + 5),
                                 role=lambda: holder[0].role if holder else "standby", instance=name)
    runtime.service = service       # the role's command worker runs the service's commands
    holder.append(ClusterRole(runtime, name, lambda: runtime._thread.start()))
    return service, holder[0]
