"""The trunk pacer (SPEC §3.8): legs paced to the rate, in order, bounded, held after a 503."""

from __future__ import annotations

import asyncio
import time

import pytest

from platforma_c2d.calls.pacing import TrunkBusy, TrunkPacer


async def _leg(pacer: TrunkPacer, name: str, out: list, leg: str | None = None) -> None:
    """Ask for a slot as ``leg`` (a channel id the pacer hears of, or None); note when it
    came, or why the leg was refused."""
    try:
        await pacer.acquire(leg)
        out.append((name, time.monotonic()))
    except TrunkBusy as exc:
        out.append((name, exc.detail))


def test_legs_go_out_at_the_rate_in_the_order_they_asked():
    async def run():
        pacer = TrunkPacer(max_calls_per_second=20, max_wait_s=5)
        out: list = []
        await asyncio.gather(*(_leg(pacer, n, out) for n in "abcdef"))
        return out
    out = asyncio.run(run())
    assert [n for n, _ in out] == list("abcdef")
    gaps = [b[1] - a[1] for a, b in zip(out, out[1:])]
    assert min(gaps) >= 0.045, gaps


def test_a_leg_that_cannot_go_out_within_max_wait_is_refused_at_once_saying_why():
    async def run():
        pacer = TrunkPacer(max_calls_per_second=10, max_wait_s=0.25)
        out: list = []
        await asyncio.gather(*(_leg(pacer, str(i), out) for i in range(6)))
        return out
    out = asyncio.run(run())
    sent = [n for n, v in out if isinstance(v, float)]
    refused = [v for n, v in out if isinstance(v, str)]
    assert sent == ["0", "1", "2"] and len(refused) == 3
    assert all("max_calls_per_second" in r and "max_wait_s" in r for r in refused)
    # At once: refused before the legs ahead of them got their slots, not after waiting.
    assert [n for n, _ in out] == ["0", "3", "4", "5", "1", "2"], out


def test_a_carrier_hold_delays_waiting_and_new_legs_and_can_refuse_them():
    async def run():
        pacer = TrunkPacer(max_calls_per_second=0, max_wait_s=0.5, hold_after_503_s=0.3)
        out: list = []
        t0 = time.monotonic()
        pacer.hold(0.3)
        await asyncio.gather(_leg(pacer, "a", out), _leg(pacer, "b", out))
        pacer.hold(2.0)
        await _leg(pacer, "c", out)
        return t0, out
    t0, out = asyncio.run(run())
    assert [n for n, _ in out] == ["a", "b", "c"]
    assert out[0][1] - t0 >= 0.29 and out[1][1] - t0 >= 0.29
    assert "503" in out[2][1] and "held" in out[2][1]


def test_a_leg_that_gives_up_its_place_does_not_hold_the_others():
    async def run():
        pacer = TrunkPacer(max_calls_per_second=10, max_wait_s=5)
        out: list = []
        await pacer.acquire()
        gone = asyncio.ensure_future(_leg(pacer, "gone", out))
        after = asyncio.ensure_future(_leg(pacer, "after", out))
        await asyncio.sleep(0.01)
        gone.cancel()
        await after
        return out, pacer.waiting
    out, waiting = asyncio.run(run())
    assert [n for n, _ in out] == ["after"] and waiting == 0


@pytest.mark.parametrize("rate", [0, 0.5])
def test_no_pacing_and_no_hold_lets_every_leg_go_at_once(rate):
    async def run():
        pacer = TrunkPacer(max_calls_per_second=rate, max_wait_s=5)
        return pacer.ask()
    assert asyncio.run(run()) is None


def test_the_next_slot_waits_for_the_last_legs_trunk_dial_then_one_interval():
    # The carrier counts INVITEs, not our requests: a leg given its slot holds
    # the next one until its trunk channel is seen dialled (a stalled Asterisk
    # dials late), and the next slot comes one interval after that Dial.
    async def run():
        pacer = TrunkPacer(max_calls_per_second=10, max_wait_s=5)
        out: list = []
        await pacer.acquire("leg-a")
        t_a = time.monotonic()
        b = asyncio.ensure_future(_leg(pacer, "leg-b", out, "leg-b"))
        await asyncio.sleep(0.3)            # Asterisk sits on leg a for 0.3 s: b must not go
        waited_while_stalled = list(out)
        pacer.sent("leg-other")             # another leg's Dial frees nothing
        await asyncio.sleep(0.05)
        still_waiting = list(out)
        pacer.sent("leg-a")
        t_dial_a = time.monotonic()
        await b
        return t_a, t_dial_a, waited_while_stalled, still_waiting, out
    t_a, t_dial_a, stalled, still, out = asyncio.run(run())
    assert stalled == [] and still == []
    [(name, t_b)] = out
    assert name == "leg-b" and t_b - t_dial_a >= 0.099, (t_b - t_dial_a)


def test_a_leg_never_seen_dialled_frees_the_trunk_after_the_report_timeout(monkeypatch):
    from platforma_c2d.calls import pacing
    monkeypatch.setattr(pacing, "SENT_REPORT_TIMEOUT_S", 0.2)

    async def run():
        pacer = TrunkPacer(max_calls_per_second=10, max_wait_s=5)
        out: list = []
        await pacer.acquire("lost")
        t0 = time.monotonic()
        await _leg(pacer, "next", out, "next")
        return t0, out
    t0, [(name, t)] = asyncio.run(run())
    assert name == "next" and t - t0 >= 0.29


def test_a_leg_that_waits_for_a_dial_longer_than_max_wait_is_refused():
    waiting: list[int] = []

    async def run():
        pacer = TrunkPacer(max_calls_per_second=10, max_wait_s=0.2, on_waiting=waiting.append)
        out: list = []
        await pacer.acquire("stuck")
        await _leg(pacer, "next", out, "next")
        return out
    [(name, detail)] = asyncio.run(run())
    # It waited in line (its slot could have come in time), then was refused when
    # the stuck leg's Dial had not come early enough to leave it one.
    assert name == "next" and "max_calls_per_second" in detail and waiting[0] == 1 and waiting[-1] == 0
