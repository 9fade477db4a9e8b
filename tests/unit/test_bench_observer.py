"""The benchmark's observer (bench/observer.py) counts calls, not bridges.

Since decision 0014 a REST call of the service has three bridges in
Asterisk: the call's own ``c2d-<call id>`` (the two Local ``;1`` halves) and
the ``Dial`` bridge of each leg's dialplan half (``;2`` and the phone, ``;2``
and the trunk). Fed the ARI events Asterisk sends for such calls, the
observer must say one connected call per call, and tie the call to its own
bridge.
"""

from __future__ import annotations

import asyncio
import json

from bench.observer import Observer, ari_time, call_key

TS = "2026-12-07T17:00:{:06.3f}+0000"


def _ev(kind: str, bridge: str, chan: str, exten: str, t: float) -> str:
    return json.dumps({"type": kind, "timestamp": TS.format(t), "bridge": {"id": bridge},
                       "channel": {"id": chan, "dialplan": {"exten": exten}}})


def _service_call(call_id: str, callee: str, t: float) -> tuple[list[str], list[str]]:
    """The entries and the departures of one service REST call's three bridges."""
    a, c = f"c2d-{call_id}-agent", f"c2d-{call_id}-callee"
    bridges = [(f"dial-a-{call_id}", [(a + "-dial", callee), (f"phone-{call_id}", "s")]),
               (f"dial-c-{call_id}", [(c + "-dial", callee), (f"trunk-{call_id}", "s")]),
               (f"c2d-{call_id}", [(a, callee), (c, callee)])]
    entered, left = [], []
    for i, (bridge, chans) in enumerate(bridges):
        for j, (chan, exten) in enumerate(chans):
            entered.append(_ev("ChannelEnteredBridge", bridge, chan, exten, t + i * 0.1 + j * 0.01))
            left.append(_ev("ChannelLeftBridge", bridge, chan, exten, t + 5))
    return entered, left


class _Socket:
    def __init__(self, frames: list[str]):
        self.frames = frames

    def __aiter__(self):
        return self._gen()

    async def _gen(self):
        for frame in self.frames:
            yield frame


def _observe(frames: list[str]) -> Observer:
    obs = Observer("127.0.0.1", 8088, ("u", "p"), http=None)
    obs._ws = _Socket(frames)
    asyncio.run(obs._read())
    return obs


def test_a_service_call_with_three_bridges_counts_as_one_connected_call():
    entered1, left1 = _service_call("aaa", "0200000001", 1.0)
    entered2, _ = _service_call("bbb", "0200000002", 2.0)
    obs = _observe(entered1 + entered2)
    assert obs.connected_now == 2 and obs.peak == 2
    # the call's own bridge, whether asked by call id or by callee number
    assert obs.bridge_for("0200000001", "aaa").id == "c2d-aaa"
    assert obs.bridge_for("0200000001").id == "c2d-aaa"
    # connected when the second leg entered the call's own bridge, not a leg's Dial bridge
    assert obs.bridge_for("0200000001").connected_at == ari_time(TS.format(1.21))


def test_a_call_ends_when_every_bridge_of_it_has_ended():
    entered, left = _service_call("aaa", "0200000001", 1.0)
    obs = _observe(entered + left[:4])          # the legs' Dial bridges gone, the call's own not yet
    assert obs.connected_now == 1
    obs = _observe(entered + left)
    assert obs.connected_now == 0 and obs.peak == 1


def test_bridges_with_no_callee_on_them_are_calls_of_their_own():
    # the ARI floor's PJSIP legs have extension "s": each bridge is one call, by its id
    frames = []
    for n in (1, 2, 3):
        frames += [_ev("ChannelEnteredBridge", f"c2d-floor{n}", f"floor{n}-agent", "s", n),
                   _ev("ChannelEnteredBridge", f"c2d-floor{n}", f"floor{n}-callee", "s", n + 0.1)]
    obs = _observe(frames)
    assert obs.connected_now == 3 and obs.peak == 3
    assert call_key("c2d-floor1", None) == "c2d-floor1" and call_key("x", "0200000001") == "0200000001"
