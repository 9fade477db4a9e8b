"""The call service of an instance in a cluster (SPEC §11): every call, from any instance.

* A ``POST`` is placed by the active instance of the node that serves the
  agent (``[cluster] rules``): here when this instance is it, else through a
  command (``cluster/commands.py``). The answers are one node's: 201 with the
  journalled call, 409 ``agent-busy`` (the agent's calls are all held by its
  node's active instance), an ``Idempotency-Key`` replayed (the journal is
  shared), 503 when the node has no active instance or does not answer in time.
* ``GET`` and the list read the shared journal, on any instance.
* A ``DELETE`` of an open call goes to the active instance of the call's node
  (its journalled ``node``).
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from platforma_c2d.calls.errors import AsteriskUnavailable, InvalidRequest
from platforma_c2d.calls.model import Origin, State
from platforma_c2d.calls.placing import PlaceRequest, check_call_caps, load_place_request
from platforma_c2d.calls.service import Caller, CallService
from platforma_c2d.cluster.commands import CommandBus
from platforma_c2d.cluster.registrations import registered_node
from platforma_c2d.cluster.routing import node_for_agent
from platforma_c2d.store.journal import calls as calls_table

_OPEN = tuple(s.value for s in State if s is not State.ENDED)


class ClusterCallCount:
    """The calls up in the whole cluster, from the shared journal: what
    :func:`check_call_caps` counts (``active_calls``), so that ``[limits]
    max_active_calls`` and ``max_active_calls_per_token`` hold for the cluster.
    REST and browser calls not ended, of every node; FastAGI calls are the dialplan's."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def active_calls(self, token_name: str | None = None) -> int:
        """How many calls are not yet ended: all, or those placed with ``token_name``.
        Raises ``sqlalchemy.exc.SQLAlchemyError``."""
        query = sa.select(sa.func.count()).select_from(calls_table).where(
            calls_table.c.state.in_(_OPEN), calls_table.c.origin != Origin.AGI.value)
        if token_name is not None:
            query = query.where(calls_table.c.token_name == token_name)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()


class ClusterCallService(CallService):
    """:class:`CallService` that sends each placement and cancellation to the call's node.

    ``bus``: the commands to other instances; ``role``: returns this
    instance's role now (``"active"``, ``"standby"``, ``"lost"``);
    ``instance``: this instance's name. Raises what :class:`CallService`
    raises, and ``AsteriskUnavailable`` (503) when the owning node has no
    active instance or does not answer within ``[cluster] command_timeout_s``.
    """

    def __init__(self, *args, bus: CommandBus, role, instance: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.cluster = self.config.cluster
        self.bus, self.role, self.instance = bus, role, instance
        self._rules = self.cluster.parsed_rules()
        self._counts = ClusterCallCount(self.journal.engine)

    def node_of(self, agent: str) -> str:
        """The node that serves ``agent``: with ``agents_by = "registration"`` the node
        where its endpoint is online, else (or when none) the first rule's. Raises
        ``InvalidRequest`` (400) when neither names one, ``AsteriskUnavailable`` (503)
        when the store does not answer."""
        node = None
        if self.cluster.agents_by == "registration":
            try:
                node = registered_node(self.journal.engine, agent)
            except sa.exc.SQLAlchemyError as exc:
                raise AsteriskUnavailable("the store does not answer; try again shortly") from exc
        node = node or node_for_agent(agent, self._rules)
        if node is None:
            why = "no node serves this agent"
            raise InvalidRequest("the request breaks the Click2Dial input rules", {"fields": {"agent": why}})
        return node

    def _here(self, node: str | None) -> bool:
        return node is None or (node == self.cluster.node and self.role() == "active")

    def place_call(self, request: PlaceRequest, caller: Caller = Caller(),
                   idempotency_key: str | None = None) -> tuple[dict, bool]:
        """Place a REST call on its agent's node; see :meth:`CallService.place_call`."""
        node = self.node_of(request.call.agent)
        if self._here(node):
            self._check_caps(caller)
            return super().place_call(request, caller, idempotency_key)
        answer = self.bus.send(node, "place", {"body": request.body, "caller": dataclasses.asdict(caller),
                                               "key": idempotency_key})
        return answer["call"], answer["replayed"]

    def cancel_call(self, call_id: str, caller: Caller = Caller()) -> dict:
        """Cancel a call through the active instance of its node; see :meth:`CallService.cancel_call`."""
        found = self.get_call(call_id, caller)
        if found["state"] == State.ENDED.value:
            return found
        node = (self.journal.get_row(call_id) or {}).get("node")
        if self._here(node):
            return super().cancel_call(call_id, caller)
        return self.bus.send(node, "cancel", {"id": call_id, "caller": dataclasses.asdict(caller)})["call"]

    def run_command(self, kind: str, payload: dict) -> dict:
        """Carry out a command of another instance here, the node's active instance
        (the :class:`~platforma_c2d.cluster.commands.CommandWorker`'s handler).
        Returns the answer; raises the API error a client would get."""
        if self.role() != "active":
            raise AsteriskUnavailable("this node's active instance is changing; try again shortly")
        caller = Caller(payload["caller"]["name"], tuple(payload["caller"]["agents"]))
        if kind == "place":
            self._check_caps(caller)
            request = load_place_request(payload["body"], self.config.webhooks.allowed_url_prefixes)
            call, replayed = CallService.place_call(self, request, caller, payload["key"])
            return {"call": call, "replayed": replayed}
        if kind == "cancel":
            return {"call": CallService.cancel_call(self, payload["id"], caller)}
        raise ValueError(f"unknown cluster command {kind!r}")

    def _check_caps(self, caller: Caller) -> None:
        """``[limits] max_active_calls`` (and per token) for the whole cluster: raises
        ``TooManyCalls`` (429) as one node does, ``AsteriskUnavailable`` when the store
        does not answer. Counted before the placement (two nodes placing at the same
        moment may pass one call over the cap); the node's own count follows on its loop."""
        limits = self.config.limits
        if not (limits.max_active_calls or limits.max_active_calls_per_token):
            return
        try:
            check_call_caps(self._counts, limits, caller.name)
        except sa.exc.SQLAlchemyError as exc:
            raise AsteriskUnavailable("the store does not answer; try again shortly") from exc

    def health(self) -> dict:
        """:meth:`CallService.health` with ``cluster``: this instance's ``node``,
        ``instance`` and ``role``. A standby is ``ok`` when the store is writable
        (it serves the API; its node's calls are the active instance's)."""
        out = super().health()
        role = self.role()
        out["cluster"] = {"node": self.cluster.node, "instance": self.instance, "role": role}
        if role == "standby":
            out["status"] = "ok" if out["store_writable"] else "degraded"
        return out
