"""Several Asterisk nodes and standby instances sharing one PostgreSQL store (SPEC §11).

* ``[cluster]`` (this instance's node and name, which node serves an agent)
  and its checks are read with the rest of the config
  (:mod:`platforma_c2d.config.cluster`);
* :mod:`~platforma_c2d.cluster.routing`: pure decisions (an agent's node, a
  node's lock key);
* :mod:`~platforma_c2d.cluster.lease`: one active instance per node, through a
  PostgreSQL advisory lock held on a connection of its own;
* :mod:`~platforma_c2d.cluster.commands`: placements and cancellations sent to
  the node's active instance through the store (a command table, LISTEN/NOTIFY
  and polling);
* :mod:`~platforma_c2d.cluster.service`: the call service of a cluster
  instance (routes each call to its node);
* :mod:`~platforma_c2d.cluster.role`: the instance's role, wired into the
  service's runtime.

docs/cluster.md tells how it fits together.
"""
