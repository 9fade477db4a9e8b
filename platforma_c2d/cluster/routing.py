"""Pure decisions of a cluster (SPEC §11): which node serves an agent, and the
key of a node's advisory lock. No I/O."""

from __future__ import annotations

import fnmatch
import zlib

#: First half of every advisory lock key of the cluster (PostgreSQL's two-int form).
LOCK_CLASS = 0x0C2D
#: Second half of the key of the lock whose holder delivers the cluster's webhooks.
DELIVERY_LOCK = 0


def node_for_agent(agent: str, rules: tuple[tuple[str, str], ...]) -> str | None:
    """The node that serves ``agent``: the node of the first (pattern, node) rule
    whose shell-style pattern (``*``, ``?``, ``[0-9]``) matches the whole agent;
    None when none does."""
    for pattern, node in rules:
        if fnmatch.fnmatchcase(agent, pattern):
            return node
    return None


def node_lock_key(node: str) -> tuple[int, int]:
    """The advisory lock key of ``node``: (``LOCK_CLASS``, a signed 32-bit CRC-32 of
    its name, never ``DELIVERY_LOCK``). The same on every instance and release."""
    crc = zlib.crc32(node.encode()) or 1
    return LOCK_CLASS, crc - (1 << 32) if crc >= 1 << 31 else crc
