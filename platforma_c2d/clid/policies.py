"""How a pool chooses its number (SPEC §12): pure functions, no I/O.

The store (:mod:`platforma_c2d.store.clids`) hands in what a policy needs
— the pool's turn, today's use of each number, the number a callee was
last called from — read in the same transaction that records the choice,
so two calls at once (on any node) never see the same state.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from platforma_c2d.config.pools import POLICIES

#: A common prefix shorter than this says nothing of the area ("0" is the trunk prefix).
AREA_MIN_DIGITS = 2


def national(number: str) -> str:
    """``number`` in national form: ``27`` + 9 digits becomes ``0`` + 9 digits;
    anything else is returned as is (international ``00…`` numbers stay)."""
    if len(number) == 11 and number.startswith("27"):
        return "0" + number[2:]
    return number


def common_prefix(a: str, b: str) -> int:
    """How many leading digits ``a`` and ``b`` share, compared in national form."""
    a, b = national(a), national(b)
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def area_matches(callee: str, numbers: Sequence[str]) -> list[str]:
    """The numbers sharing the longest prefix with ``callee`` (at least
    :data:`AREA_MIN_DIGITS` digits, national form), in pool order; ``[]``
    when none shares that much."""
    best = max((common_prefix(callee, n) for n in numbers), default=0)
    if best < AREA_MIN_DIGITS:
        return []
    return [n for n in numbers if common_prefix(callee, n) == best]


def uses_turn(policy: str, numbers: Sequence[str], *, remembered: str | None = None,
              fallback: str = "random") -> bool:
    """Whether :func:`choose` with these arguments takes round-robin's turn
    (so the pool's position moves on only when round-robin chose: a
    returning callee under ``sticky`` leaves it where it was)."""
    if policy == "round_robin":
        return True
    if policy == "sticky" and remembered in numbers:
        return False
    return policy in ("sticky", "area") and fallback == "round_robin"


def choose(policy: str, numbers: Sequence[str], *, callee: str = "", turn: int = 1,
           usage: Mapping[str, int] | None = None, remembered: str | None = None,
           fallback: str = "random", rng: random.Random | None = None) -> str:
    """Choose one of ``numbers`` (non-empty, in pool order) by ``policy``.

    Args:
        policy: one of ``random`` (uniform), ``round_robin`` (the
            ``turn``-th number, 1-based, wrapping), ``least_used`` (fewest
            calls today in ``usage``, the first in pool order on a tie),
            ``sticky`` (``remembered`` when it is among ``numbers``, else
            ``fallback``), ``area`` (the longest common prefix with
            ``callee``; ``fallback`` among the numbers tied, or among all
            when none shares an area).
        numbers: the numbers that may be drawn now (rested ones left out).
        callee: the callee's number (``area``).
        turn: the pool's draw counter, 1 for its first draw (``round_robin``).
        usage: number -> calls today (``least_used``); missing means 0.
        remembered: the number this callee was last called from (``sticky``).
        fallback: ``random``, ``round_robin`` or ``least_used``.
        rng: the random source (``random`` module's when None).

    Returns:
        A member of ``numbers``.

    Raises:
        ValueError: ``numbers`` is empty or ``policy`` unknown.
    """
    if not numbers:
        raise ValueError("no number to choose from")
    if policy == "random":
        return (rng or random).choice(list(numbers))
    if policy == "round_robin":
        return numbers[(turn - 1) % len(numbers)]
    if policy == "least_used":
        used = usage or {}
        return min(numbers, key=lambda n: used.get(n, 0))   # min keeps the first of a tie
    again = dict(callee=callee, turn=turn, usage=usage, rng=rng)
    if policy == "sticky":
        if remembered in numbers:
            return remembered
        return choose(fallback, numbers, **again)
    if policy == "area":
        return choose(fallback, area_matches(callee, numbers) or numbers, **again)
    raise ValueError(f"unknown policy {policy!r} (known: {', '.join(POLICIES)})")
