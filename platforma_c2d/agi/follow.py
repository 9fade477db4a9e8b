"""Hand an accepted AGI call's channel to the service, which follows it to its end (SPEC §6).

An administrator's dialplan may run our AGI and ``Dial()`` with no hangup
handler of ours, so the ``click2dial-hangup`` script never runs and nothing
would end the call in the journal. Before it answers ``C2D_STATUS=OK``, the
``click2dial`` script therefore subscribes the service's Stasis app to the
channel (ARI ``POST /applications/{app}/subscription?eventSource=channel:<id>``):
Asterisk then sends the app that channel's ``Dial`` and ``ChannelDestroyed``
events although the channel never enters Stasis, and the service ends the
call with the outcome (``platforma_c2d.calls.agi_follower``).

The request is the package's own ARI client's
(:meth:`platforma_c2d.ari.client.AriClient.subscribe`), the one the service
sends when it follows a channel again after a connect. The FastAGI server
runs one thread per session and no event loop, so the client runs on a loop
of its own, in one thread, and each session waits for its request there.

A failed subscription (service not running, ARI unreachable) never stops
the call: it is logged, and the service subscribes again, or ends the call
if its channel is gone, when it next connects (reconciliation).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading

from platforma_c2d.ari.client import AriClient, AriError, AriUnavailable
from platforma_c2d.config import AriConfig

log = logging.getLogger("platforma_c2d.agi")

#: Seconds one subscription may take; the caller waits for it before its Dial().
SUBSCRIBE_TIMEOUT_S = 2.0


class ChannelFollow:
    """Subscribes ``[ari] app`` to channels through the package's ARI client.

    ``ari``: the ``[ari]`` section (url, username, password, app);
    ``timeout_s``: longest one subscription may take, seconds. Safe to use
    from many threads at once: every request runs on the client's one event
    loop (a daemon thread started here), over its connection pool.
    """

    def __init__(self, ari: AriConfig, timeout_s: float = SUBSCRIBE_TIMEOUT_S):
        self.app = ari.app
        self.timeout_s = timeout_s
        self.client = AriClient(ari.url, ari.username, ari.password, ari.app, timeout_s=timeout_s)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="agi-ari", daemon=True)
        self._thread.start()

    def subscribe(self, channel_id: str) -> bool:
        """Subscribe the app to the channel ``channel_id`` (its UNIQUEID).

        Returns whether Asterisk accepted it; never raises (a refusal, a
        404 because the service is not connected, or a network error is
        logged as a warning).
        """
        done = asyncio.run_coroutine_threadsafe(self.client.subscribe(f"channel:{channel_id}"), self._loop)
        try:
            done.result(self.timeout_s + 1.0)   # the client's own timeout comes first
        except AriUnavailable as exc:
            log.warning("cannot hand AGI channel %s to the service (ARI: %s); it is followed "
                        "when the service next connects", channel_id, str(exc).rsplit(": ", 1)[-1])
            return False
        except AriError as exc:
            log.warning("cannot hand AGI channel %s to the service (ARI answered %d); it is "
                        "followed when the service next connects", channel_id, exc.status)
            return False
        except concurrent.futures.TimeoutError:
            done.cancel()
            log.warning("cannot hand AGI channel %s to the service (ARI: no answer within %g s); "
                        "it is followed when the service next connects", channel_id, self.timeout_s)
            return False
        return True

    def close(self) -> None:
        """Close the client's connection pool, then stop its loop."""
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self.client.close(), self._loop).result(5.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        self._loop.close()
