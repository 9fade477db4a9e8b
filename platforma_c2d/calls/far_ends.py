"""The channels our Local legs dial, followed for their own hangup cause (ADR 0014).

A leg originated as ``Local/<number>@c2d-trunk-leg/n`` (or through
``c2d-agent-leg``) reaches the trunk (or the agent's phone) through a
``Dial()`` in its dialplan half. Once that channel answers, its end is the
leg's end, but the cause Asterisk reports on the leg itself is not the far
channel's: ``Dial()`` presets 16 on both sides at the answer and the Local
channel passes 16 on. A call that Asterisk cut for the trunk's
``rtp_timeout`` (cause 44 on the trunk's channel) would be journalled as a
callee who hung up (SPEC §2: ``cause`` is the cause of the leg that decided
the outcome).

So when the dialplan half reports the answer (its ``Dial`` event, status
``ANSWER``), the app subscribes to the dialled channel
(``POST /applications/{app}/subscription``) and notes the cause of its
``ChannelDestroyed``. That channel is hung up in a thread of its own,
concurrently with the Local channel, so its event can come after the
leg's: :meth:`FarEnds.settle` lets the leg's end wait for it, briefly and
bounded. Its events are handled apart from the call's ordered events (the
Stasis app keys them by their own channel), so that wait never waits on
itself. A far channel whose subscription failed (it was gone already) is
not waited for; after a restart, answered legs are not followed again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from platforma_c2d.ari.client import AriClient, AriError, AriUnavailable
from platforma_c2d.ari.records import AriEvent, ChannelDestroyed
from platforma_c2d.calls.model import Call, Leg

log = logging.getLogger("platforma_c2d.calls")

#: How long a leg's end waits for its far channel's ChannelDestroyed, in seconds
#: (normally a few ms; only a lost event makes it wait this long).
SETTLE_S = 2.0
#: Followed far channels kept at most before those of ended calls are dropped.
_MAX_FOLLOWED = 2000


@dataclass
class _Followed:
    call: Call
    leg: Leg
    far_id: str
    done: asyncio.Event = field(default_factory=asyncio.Event)


class FarEnds:
    """The far channels of answered Local legs, each followed until it is destroyed.

    ``ari``: the REST client (its app is subscribed to each far channel).
    Runs on the engine's event loop. The cause found goes to the leg's
    ``far_cause`` (Q.850, from the far channel's ``ChannelDestroyed``).
    """

    def __init__(self, ari: AriClient):
        self.ari = ari
        self._by_far: dict[str, _Followed] = {}
        self._by_leg: dict[str, _Followed] = {}

    def follow(self, call: Call, leg: Leg, far_id: str) -> None:
        """Follow ``far_id``, the channel ``leg``'s dialplan half dialled and that
        answered: subscribe to it in a task of its own (the call's events do not
        wait for the request). Once per leg; a repeated report changes nothing."""
        if not far_id or leg.channel_id in self._by_leg or call.ended:
            return
        if len(self._by_far) >= _MAX_FOLLOWED:
            for stale in [f for f in self._by_far.values() if f.call.ended]:
                self._drop(stale)
        followed = _Followed(call, leg, far_id)
        self._by_far[far_id] = self._by_leg[leg.channel_id] = followed
        asyncio.get_running_loop().create_task(self._subscribe(followed))

    async def _subscribe(self, followed: _Followed) -> None:
        try:
            await self.ari.subscribe(f"channel:{followed.far_id}")
        except (AriError, AriUnavailable) as exc:
            # Gone before the request (its cause is lost) or ARI away: never waited for.
            log.debug("cannot follow channel %s of the %s leg: %s", followed.far_id, followed.leg.role, exc)
            self._drop(followed)

    def is_followed(self, channel_id: str) -> bool:
        """Whether ``channel_id`` is a far channel being followed."""
        return channel_id in self._by_far

    def on_event(self, ev: AriEvent) -> None:
        """An event of a followed far channel: its ``ChannelDestroyed`` gives its
        leg's ``far_cause`` and ends the following; others change nothing."""
        followed = self._by_far.get(ev.channel.id)
        if followed is None or not isinstance(ev, ChannelDestroyed):
            return
        if isinstance(ev.cause, int) and 0 < ev.cause < 128:
            followed.leg.far_cause = ev.cause
        self._drop(followed)

    async def settle(self, leg: Leg, timeout_s: float = SETTLE_S) -> None:
        """Wait until ``leg``'s far channel, if followed, has reported its end
        (at most ``timeout_s`` seconds); at once when it is not followed."""
        followed = self._by_leg.get(leg.channel_id)
        if followed is None:
            return
        try:
            await asyncio.wait_for(followed.done.wait(), timeout_s)
        except asyncio.TimeoutError:
            log.warning("no end reported for channel %s of the %s leg within %g s",
                        followed.far_id, leg.role, timeout_s)
            self._drop(followed)

    def _drop(self, followed: _Followed) -> None:
        if self._by_far.get(followed.far_id) is followed:
            del self._by_far[followed.far_id]
        if self._by_leg.get(followed.leg.channel_id) is followed:
            del self._by_leg[followed.leg.channel_id]
        followed.done.set()
