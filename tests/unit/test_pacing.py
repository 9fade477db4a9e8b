"""The trunk pacer (SPEC §3.8): legs paced to the rate, in order, bounded, held after a 503."""

from __future__ import annotations

import asyncio
import time

import pytest

from platforma_c2d.calls.pacing import TrunkBusy, TrunkPacer


async def _leg(pacer: TrunkPacer, name: str, out: list) -> None:
    try:
        await pacer.acquire()
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
        t0 = time.monotonic()
        await asyncio.gather(*(_leg(pacer, str(i), out) for i in range(6)))
        return out, time.monotonic() - t0
    out, took = asyncio.run(run())
    sent = [n for n, v in out if isinstance(v, float)]
    refused = [v for n, v in out if isinstance(v, str)]
    assert sent == ["0", "1", "2"] and len(refused) == 3
    assert all("max_calls_per_second" in r and "max_wait_s" in r for r in refused)
    assert took < 0.5


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
