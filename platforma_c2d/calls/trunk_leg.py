"""Whether the dialplan has the contexts of the legs we originate (ADR 0014).

Callee legs are originated as ``Local/<number>@<[dial] trunk_leg_context>/n``
and a REST call's agent leg (an extension) as
``Local/<callee>@<[dial] agent_leg_context>/n``, so that their CDR rows name
the dialled number, or the callee, in ``dst`` (SPEC §5). That needs our
``[c2d-trunk-leg]`` and ``[c2d-agent-leg]`` contexts in the PBX's dialplan;
an Asterisk whose administrator has not merged one would fail every such
leg. ARI cannot list the dialplan, so our ``[globals]`` carry a marker per
context, ``C2D_TRUNK_LEG_CONTEXT`` and ``C2D_AGENT_LEG_CONTEXT``, merged with
it (docs/configuration.md), and the service reads them whenever it connects
to ARI: a marker naming the configured context, the legs go through it;
unset or naming another, straight to the endpoint (the CDR row then says
``dst = s``), with a warning.
"""

from __future__ import annotations

import dataclasses
import logging

from platforma_c2d.ari.client import AriClient, AriError, AriUnavailable
from platforma_c2d.config import DialConfig
from platforma_c2d.config.dialplan_check import LEG_CONTEXTS

log = logging.getLogger("platforma_c2d.engine")

#: The global variable of our ``[globals]`` that says the trunk-leg context is merged.
MARKER = LEG_CONTEXTS["trunk_leg_context"][0]


def effective_dial(dial: DialConfig, marker: str | None, key: str = "trunk_leg_context") -> DialConfig:
    """``dial`` as the legs may use it, given a marker's value in Asterisk.

    ``marker``: the value of the global of ``key`` (``C2D_TRUNK_LEG_CONTEXT``
    for ``trunk_leg_context``, ``C2D_AGENT_LEG_CONTEXT`` for
    ``agent_leg_context``; ``""`` or ``None`` when unset). With ``[dial] key``
    set and the marker naming another context or none, returns ``dial`` with
    that key ``""`` (legs straight to their endpoint); otherwise ``dial``
    unchanged. Pure."""
    context = getattr(dial, key)
    if context and marker != context:
        return dataclasses.replace(dial, **{key: ""})
    return dial


async def read_marker(ari: AriClient, name: str = MARKER) -> str | None:
    """The value of the global ``name`` in Asterisk, ``""`` when unset,
    ``None`` when ARI did not answer. Never raises."""
    try:
        return await ari.global_variable(name) or ""
    except (AriError, AriUnavailable):
        return None


async def settle_trunk_legs(ari: AriClient, configured: DialConfig, current: DialConfig) -> DialConfig:
    """The ``[dial]`` the engine should use after a connect to ARI.

    ``configured``: the config's ``[dial]``; ``current``: what the engine uses
    now (a context's setting kept from it when ARI does not answer). Logs a
    warning for each configured context that is not merged (its marker does
    not name it)."""
    dial = configured
    for key, (marker_name, legs, shipped) in LEG_CONTEXTS.items():
        context = getattr(configured, key)
        if not context:
            continue
        marker = await read_marker(ari, marker_name)
        if marker is None:
            dial = dataclasses.replace(dial, **{key: getattr(current, key)})
            continue
        dial = effective_dial(dial, marker, key)
        if not getattr(dial, key):
            log.warning("the dialplan's %s global is %r, not %r ([dial] %s): %s are dialled "
                        "straight to their endpoint and their CDR rows say dst = s; merge [%s] and "
                        "the global (docs/configuration.md) or set [dial] %s = \"\"",
                        marker_name, marker, context, key, legs, shipped, key)
    return dial
