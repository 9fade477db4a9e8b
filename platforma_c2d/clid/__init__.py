"""CLID pools and policies (SPEC §12): which number a call presents.

* :mod:`~platforma_c2d.clid.policies` — how a pool chooses (pure);
* :mod:`~platforma_c2d.clid.health` — which numbers to rest (pure);
* :mod:`~platforma_c2d.clid.pools` — which pool a caller draws from (pure);
* :mod:`~platforma_c2d.clid.picker` — the CLID of a call: explicit number,
  default, or a draw made in the store (:mod:`platforma_c2d.store.clids`).
"""
