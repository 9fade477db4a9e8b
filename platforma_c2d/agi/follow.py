"""Hand an accepted AGI call's channel to the service, which follows it to its end (SPEC §6).

An administrator's dialplan may run our AGI and ``Dial()`` with no hangup
handler of ours, so the ``click2dial-hangup`` script never runs and nothing
would end the call in the journal. Before it answers ``C2D_STATUS=OK``, the
``click2dial`` script therefore subscribes the service's Stasis app to the
channel (ARI ``POST /applications/{app}/subscription?eventSource=channel:<id>``):
Asterisk then sends the app that channel's ``Dial`` and ``ChannelDestroyed``
events although the channel never enters Stasis, and the service ends the
call with the outcome (``platforma_c2d.calls.agi_follower``).

A failed subscription (service not running, ARI unreachable) never stops
the call: it is logged, and the service subscribes again, or ends the call
if its channel is gone, when it next connects (reconciliation).
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpx

from platforma_c2d.config import AriConfig

log = logging.getLogger("platforma_c2d.agi")

#: Seconds one subscription may take; the caller waits for it before its Dial().
SUBSCRIBE_TIMEOUT_S = 2.0


class ChannelFollow:
    """Subscribes ``[ari] app`` to channels through ARI's REST interface.

    ``ari``: the ``[ari]`` section (url, username, password, app). Safe to
    use from many threads at once (one pooled ``httpx.Client``).
    """

    def __init__(self, ari: AriConfig, timeout_s: float = SUBSCRIBE_TIMEOUT_S):
        self.app = ari.app
        self._http = httpx.Client(base_url=ari.url.rstrip("/") + "/ari", timeout=timeout_s,
                                  auth=(ari.username, ari.password),
                                  limits=httpx.Limits(max_connections=32))

    def subscribe(self, channel_id: str) -> bool:
        """Subscribe the app to the channel ``channel_id`` (its UNIQUEID).

        Returns whether Asterisk accepted it; never raises (a refusal, a
        404 because the service is not connected, or a network error is
        logged as a warning).
        """
        try:
            resp = self._http.post(f"/applications/{quote(self.app, safe='')}/subscription",
                                   params={"eventSource": f"channel:{channel_id}"})
        except httpx.HTTPError as exc:
            log.warning("cannot hand AGI channel %s to the service (ARI: %s); it is followed "
                        "when the service next connects", channel_id, type(exc).__name__)
            return False
        if resp.status_code >= 300:
            log.warning("cannot hand AGI channel %s to the service (ARI answered %d); it is "
                        "followed when the service next connects", channel_id, resp.status_code)
            return False
        return True

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()
