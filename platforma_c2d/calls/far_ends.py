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
``ChannelDestroyed`` — only when that channel's PJSIP endpoint has an RTP
timer (``rtp_timeout`` or ``rtp_timeout_hold``), the one way Asterisk cuts
an answered leg with a cause of its own; an endpoint without (the bench's,
the sample's) costs no request and no events per call. Each endpoint's
timers are read once (``GET /asterisk/config/dynamic/res_pjsip/endpoint/…``,
the calls of that minute share the request) and trusted for
``TIMERS_TTL_S``; a channel of another technology is followed as before. That channel is hung up in a thread of its own,
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
import time
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
#: Oldest followed entries looked at per new one past ``_MAX_FOLLOWED`` (amortised O(1)).
_EVICT_PER_FOLLOW = 8
#: How long an endpoint's RTP timers, once read, are trusted (s): a reload of the
#: PJSIP configuration is seen within this time.
TIMERS_TTL_S = 60.0
#: The settings of a PJSIP endpoint under which Asterisk hangs up an answered leg itself.
RTP_TIMERS = ("rtp_timeout", "rtp_timeout_hold")


def pjsip_endpoint(channel_name: str) -> str | None:
    """The PJSIP endpoint of a channel name (``PJSIP/trunk-00000007`` → ``trunk``);
    None for a channel of another technology or a name without a sequence number."""
    if not channel_name.startswith("PJSIP/"):
        return None
    endpoint, sep, _seq = channel_name[len("PJSIP/"):].rpartition("-")
    return endpoint if sep and endpoint else None


def has_rtp_timer(settings: list[dict] | None) -> bool:
    """Whether an endpoint's settings (ARI's dynamic config, ``[{"attribute", "value"}]``;
    None: no such endpoint) set ``rtp_timeout`` or ``rtp_timeout_hold`` above 0."""
    for item in settings if isinstance(settings, list) else ():
        if isinstance(item, dict) and item.get("attribute") in RTP_TIMERS:
            try:
                if int(str(item.get("value") or 0)) > 0:
                    return True
            except ValueError:
                continue
    return False


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

    def __init__(self, ari: AriClient, clock=time.monotonic):
        self.ari = ari
        self._by_far: dict[str, _Followed] = {}
        self._by_leg: dict[str, _Followed] = {}
        self._clock = clock
        #: PJSIP endpoint → (read at, whether it has an RTP timer: a future the
        #: calls that answer while it is read share)
        self._timers: dict[str, tuple[float, asyncio.Future]] = {}

    def follow(self, call: Call, leg: Leg, far_id: str, far_name: str = "") -> None:
        """Follow ``far_id`` (channel name ``far_name``), the channel ``leg``'s dialplan
        half dialled and that answered, when its endpoint may cut it (``RTP_TIMERS``):
        in a task of its own (the call's events do not wait for the requests).
        Once per leg; a repeated report changes nothing."""
        if not far_id or leg.channel_id in self._by_leg or call.ended:
            return
        self._evict()
        followed = _Followed(call, leg, far_id)
        self._by_far[far_id] = self._by_leg[leg.channel_id] = followed
        asyncio.get_running_loop().create_task(self._subscribe(followed, pjsip_endpoint(far_name)))

    def _evict(self) -> None:
        """Past ``_MAX_FOLLOWED``, drop the oldest entries of ended calls (a lost
        ``ChannelDestroyed``); a live one goes to the back. A few per call, never a scan."""
        for _ in range(_EVICT_PER_FOLLOW):
            if len(self._by_far) < _MAX_FOLLOWED:
                return
            far_id, oldest = next(iter(self._by_far.items()))
            if oldest.call.ended:
                self._drop(oldest)
            else:
                del self._by_far[far_id]
                self._by_far[far_id] = oldest

    async def cuts_silence(self, endpoint: str) -> bool:
        """Whether PJSIP ``endpoint`` has an RTP timer (``RTP_TIMERS``), read through
        ARI at most once per ``TIMERS_TTL_S``; True when ARI cannot say (followed as
        before, and read again next time). Raises nothing."""
        now = self._clock()
        cached = self._timers.get(endpoint)
        if cached is None or now - cached[0] >= TIMERS_TTL_S:
            if len(self._timers) > 10_000:   # endpoints come and go: never grows without bound
                self._timers.clear()
            cached = (now, asyncio.get_running_loop().create_task(self._read_timers(endpoint)))
            self._timers[endpoint] = cached
        try:
            return await asyncio.shield(cached[1])
        except (AriError, AriUnavailable) as exc:
            if self._timers.get(endpoint) is cached:
                del self._timers[endpoint]
            log.debug("cannot read the RTP timers of endpoint %s: %s", endpoint, exc)
            return True

    async def _read_timers(self, endpoint: str) -> bool:
        return has_rtp_timer(await self.ari.object_config("res_pjsip", "endpoint", endpoint))

    async def _subscribe(self, followed: _Followed, endpoint: str | None) -> None:
        if endpoint is not None and not await self.cuts_silence(endpoint):
            self._drop(followed)   # Asterisk never cuts it with a cause of its own
            return
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
