"""The call's bridge without Asterisk's conference mixer, identities still apart (ADR 0015).

A two-party bridge tells each leg who the other is when it forms (a
connected-line update: the trunk would get the agent's extension in a
re-INVITE or UPDATE, SPEC §3.7). Each of our legs carries
``CONNECTED_LINE_SEND_SUB``: Asterisk runs our subroutine
(``[c2d-connected-line]`` of asterisk_conf/extensions.conf) on the leg
before it indicates the update, the subroutine puts back the leg's own
connected line (its arguments), and Asterisk drops the update as equal to
the one indicated at origination: nothing goes on the wire.

A PBX whose dialplan lacks the subroutine would send the agent's identity,
so the service uses the two-party bridge only when the dialplan says the
subroutine is merged: the global ``C2D_CONNECTED_LINE_SUB`` of our
``[globals]`` names its context, read at every connect to ARI. Without it,
every call's bridge stays Asterisk's multi-party mixer (ADR 0005), which
sends no update at all and costs Asterisk CPU for every second of every call.
"""

from __future__ import annotations

import logging
import re

from platforma_c2d.ari.client import AriClient
from platforma_c2d.calls.trunk_leg import read_marker

log = logging.getLogger("platforma_c2d.engine")

#: The global variable of our ``[globals]`` that names the subroutine's context.
MARKER = "C2D_CONNECTED_LINE_SUB"
#: Asterisk's conference mixer whatever the number of legs (ADR 0005): no connected-line update.
MIXER_BRIDGE = "mixing,video_sfu"
#: A two-party bridge that relays frames (``simple_bridge``), never native RTP or direct media.
RELAY_BRIDGE = "mixing,proxy_media"

_CONTEXT = re.compile(r"[A-Za-z0-9_.-]{1,79}")


def bridge_type(sub: str) -> str:
    """The ARI bridge type of a call: the relay when our legs carry the subroutine
    ``sub`` (a context name), the mixer when ``sub`` is ``""``. Pure."""
    return RELAY_BRIDGE if sub else MIXER_BRIDGE


def keep_variables(sub: str, number: str, name: str) -> dict[str, str]:
    """The channel variables that make a leg keep the connected line (``number``,
    ``name``) it was given, whatever a bridge tells it; ``{}`` when ``sub`` is ``""``.

    ``number`` and ``name`` are digits or empty (CLIDs, callee numbers): they
    go to the subroutine as its two arguments. Pure."""
    if not sub:
        return {}
    return {"CONNECTED_LINE_SEND_SUB": f"{sub},s,1", "CONNECTED_LINE_SEND_SUB_ARGS": f"{number},{name}"}


def shown_to_agent(sub: str, callee: str) -> dict[str, str]:
    """What an agent's own phone is shown (the callee's number), kept through the bridge."""
    return {"CONNECTEDLINE(num)": callee, "CONNECTEDLINE(name)": callee,
            **keep_variables(sub, callee, callee)}


def sub_from_marker(marker: str | None) -> str:
    """The subroutine's context named by the marker's value, ``""`` when unset or not a context name."""
    return marker if marker and _CONTEXT.fullmatch(marker) else ""


async def settle_connected_line(ari: AriClient, current: str) -> str:
    """The subroutine context the legs should carry after a connect to ARI (``""``: the mixer).

    ``current``: what the engine uses now (kept when ARI does not answer).
    Logs which bridge the calls get. Never raises."""
    marker = await read_marker(ari, MARKER)
    if marker is None:
        return current
    sub = sub_from_marker(marker)
    if sub:
        log.info("calls are bridged two-party (%s), legs keep their connected line through [%s]",
                 RELAY_BRIDGE, sub)
    else:
        log.warning("the dialplan's %s global is %r: calls are bridged by Asterisk's conference mixer "
                    "(about 6 ms of Asterisk CPU per second of call); merge [c2d-connected-line] and "
                    "the global (docs/configuration.md) for the two-party bridge", MARKER, marker)
    return sub
