"""Number health (SPEC §12): which numbers of a pool to rest. Pure, no I/O.

A number whose recent calls are refused or unanswered far more often than
the rest of its pool's is likely flagged as spam by carriers. Its recent
calls are its last :data:`WINDOW` counted calls since it last came back
from a rest; a call counts when its callee was dialled and it ended
answered (good) or with a reason in :data:`BAD_REASONS` (bad).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: Recent calls of a number that are judged (the newest ones).
WINDOW = 20

#: Ended-call reasons that count against a number: the callee's side did
#: not take the call (a carrier refusal is ``rejected`` or
#: ``callee_unavailable``; spam-labelled numbers also go unanswered).
BAD_REASONS = frozenset({"callee_no_answer", "callee_busy", "callee_unavailable", "rejected"})


def outcome(reason: str | None, answered: bool) -> bool | None:
    """``True`` for an answered call, ``False`` for one refused or unanswered
    at the callee's side (:data:`BAD_REASONS`), ``None`` for one that says
    nothing of the number (the agent's side, cancelled, failed)."""
    if answered:
        return True
    return False if reason in BAD_REASONS else None


@dataclass(frozen=True)
class Tally:
    """Recent counted calls of one number: ``calls`` in all, ``bad`` of them refused or unanswered."""

    calls: int = 0
    bad: int = 0

    @property
    def answer_rate(self) -> float | None:
        """Share of answered calls (0-1), None with no counted call."""
        return None if not self.calls else round((self.calls - self.bad) / self.calls, 3)


def tally(outcomes: Sequence[bool]) -> Tally:
    """The :class:`Tally` of a number's outcomes, newest first (the first :data:`WINDOW`)."""
    recent = list(outcomes)[:WINDOW]
    return Tally(calls=len(recent), bad=sum(1 for ok in recent if not ok))


def to_rest(tallies: Mapping[str, Tally], rested: set[str], *, min_calls: int,
            margin: float) -> list[str]:
    """The numbers to rest now, worst first.

    Args:
        tallies: number -> its :class:`Tally`, for every number of the pool.
        rested: the numbers resting now (not judged again, not drawn).
        min_calls: counted calls the number, and the rest of the pool
            together, need before a judgement.
        margin: a number is rested when its share of bad calls exceeds the
            rest of the pool's share by at least this much (0-1).

    Never rests the last number left to draw.
    """
    candidates = []
    for number, own in tallies.items():
        if number in rested or own.calls < min_calls:
            continue
        others = [t for n, t in tallies.items() if n != number]
        calls = sum(t.calls for t in others)
        if calls < min_calls:
            continue
        share, pool_share = own.bad / own.calls, sum(t.bad for t in others) / calls
        if share - pool_share >= margin:
            candidates.append((share - pool_share, number))
    chosen: list[str] = []
    left = len(set(tallies) - rested)
    for _, number in sorted(candidates, reverse=True):
        if left <= 1:
            break
        chosen.append(number)
        left -= 1
    return chosen
