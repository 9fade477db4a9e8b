"""Whether the dialplan has the context of the trunk legs (ADR 0014).

Callee legs are originated as ``Local/<number>@<[dial] trunk_leg_context>/n``
so that their CDR row names the dialled number in ``dst`` (SPEC §5). That
needs our ``[c2d-trunk-leg]`` context in the PBX's dialplan; an Asterisk
whose administrator has not merged it would fail every such leg. ARI cannot
list the dialplan, so our ``[globals]`` carry a marker,
``C2D_TRUNK_LEG_CONTEXT``, merged with the context (docs/configuration.md),
and the service reads it whenever it connects to ARI: naming the configured
context, the legs go through it; unset or naming another, straight to the
trunk (the CDR row then says ``dst = s``), with a warning.
"""

from __future__ import annotations

import dataclasses
import logging

from platforma_c2d.ari.client import AriClient, AriError, AriUnavailable
from platforma_c2d.config import DialConfig

log = logging.getLogger("platforma_c2d.engine")

#: The global variable of our ``[globals]`` that says the context is merged.
MARKER = "C2D_TRUNK_LEG_CONTEXT"


def effective_dial(dial: DialConfig, marker: str | None) -> DialConfig:
    """``dial`` as the legs may use it, given the marker's value in Asterisk.

    ``marker``: the value of the global ``C2D_TRUNK_LEG_CONTEXT`` (``""`` or
    ``None`` when unset). With ``[dial] trunk_leg_context`` set and the marker
    naming another context or none, returns ``dial`` with
    ``trunk_leg_context = ""`` (legs straight to the trunk); otherwise
    ``dial`` unchanged. Pure."""
    if dial.trunk_leg_context and marker != dial.trunk_leg_context:
        return dataclasses.replace(dial, trunk_leg_context="")
    return dial


async def read_marker(ari: AriClient) -> str | None:
    """The value of the ``C2D_TRUNK_LEG_CONTEXT`` global in Asterisk, ``""``
    when unset, ``None`` when ARI did not answer. Never raises."""
    try:
        return await ari.global_variable(MARKER) or ""
    except (AriError, AriUnavailable):
        return None


async def settle_trunk_legs(ari: AriClient, configured: DialConfig, current: DialConfig) -> DialConfig:
    """The ``[dial]`` the engine should use after a connect to ARI.

    ``configured``: the config's ``[dial]``; ``current``: what the engine uses
    now (kept when ARI does not answer). Logs a warning when the configured
    context is not merged (the marker does not name it)."""
    if not configured.trunk_leg_context:
        return configured
    marker = await read_marker(ari)
    if marker is None:
        return current
    dial = effective_dial(configured, marker)
    if not dial.trunk_leg_context:
        log.warning("the dialplan's %s global is %r, not %r ([dial] trunk_leg_context): callee legs "
                    "are dialled straight to the trunk and their CDR rows say dst = s; merge "
                    "[c2d-trunk-leg] and the global (docs/configuration.md) or set "
                    "[dial] trunk_leg_context = \"\"", MARKER, marker, configured.trunk_leg_context)
    return dial
