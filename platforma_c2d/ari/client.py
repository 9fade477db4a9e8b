"""ARI REST calls used by the Click2Dial Stasis app (Asterisk 22).

Every method is a coroutine on the service's event loop. Variables go in the
JSON body under ``variables`` (field report C10), never in the query string.
Hanging up a channel or destroying a bridge that is already gone is not an
error (404 → ``False``), so teardown is idempotent (field report C07).

Docs: https://docs.asterisk.org/Asterisk_22_Documentation/API_Documentation/Asterisk_REST_Interface/
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

log = logging.getLogger(__name__)


class AriError(Exception):
    """Asterisk answered an ARI request with an error.

    ``status``: the HTTP status (404, 409, 422, 500, ...); ``message``: the
    ``message`` of Asterisk's JSON error, or the body text.
    """

    def __init__(self, status: int, message: str, method: str = "", path: str = ""):
        self.status, self.message = status, message
        super().__init__(f"ARI {method} {path}: {status} {message}")


class AriUnavailable(AriError):
    """Asterisk could not be reached at all (connection refused, timeout)."""

    def __init__(self, message: str):
        super().__init__(0, message)


class AriClient:
    """ARI REST client.

    ``url``: Asterisk's HTTP server, e.g. ``http://127.0.0.1:8088``;
    ``username``/``password``: an ari.conf user; ``app``: the Stasis app name;
    ``timeout_s``: per-request timeout in seconds. Raises ``AriError`` (4xx/5xx)
    or ``AriUnavailable`` (no answer) from every request method.
    """

    def __init__(self, url: str, username: str, password: str, app: str, timeout_s: float = 10.0):
        self.url, self.app = url.rstrip("/"), app
        self._auth = (username, password)
        self._timeout = timeout_s
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        # Created lazily on the loop that uses it.
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.url + "/ari", auth=self._auth, timeout=self._timeout,
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=16))
        return self._http

    async def close(self) -> None:
        """Close the connection pool."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def request(self, method: str, path: str, *, params: dict | None = None,
                      json: Any = None, ok404: bool = False) -> Any:
        """One ARI request; returns the decoded JSON body (or None when empty).

        ``ok404``: a 404 returns ``None`` instead of raising.
        """
        try:
            resp = await self.http.request(method, path, params=params, json=json)
        except httpx.HTTPError as exc:
            raise AriUnavailable(f"{method} {path}: {type(exc).__name__}") from exc
        if resp.status_code == 404 and ok404:
            return None
        if resp.status_code >= 400:
            try:
                message = resp.json().get("message", resp.text)
            except ValueError:
                message = resp.text
            raise AriError(resp.status_code, str(message)[:200], method, path)
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            return None

    # --- Asterisk --------------------------------------------------------
    async def asterisk_info(self) -> dict:
        """``GET /asterisk/info``."""
        return await self.request("GET", "/asterisk/info")

    async def endpoint(self, tech: str, resource: str) -> dict | None:
        """``GET /endpoints/{tech}/{resource}``; None when it does not exist."""
        return await self.request("GET", f"/endpoints/{tech}/{resource}", ok404=True)

    # --- channels --------------------------------------------------------
    async def originate(self, *, endpoint: str, channel_id: str, app_args: str,
                        variables: dict[str, str], timeout_s: int,
                        originator: str | None = None) -> dict:
        """``POST /channels``: dial ``endpoint`` now; the channel enters our app when answered.

        Asterisk subscribes the app to the channel at once, so its ringing and
        hangup events arrive before StasisStart. An originated channel is
        Party A of its own CDR, so an unanswered leg still gets a CDR row.
        ``channel_id`` is chosen by us before the request (field report C01);
        ``originator``: the channel this one is dialled for (shared linkedid).
        """
        params = {"endpoint": endpoint, "app": self.app, "appArgs": app_args,
                  "channelId": channel_id, "timeout": timeout_s}
        if originator:
            params["originator"] = originator  # same linkedid in the CDRs
        return await self.request("POST", "/channels", params=params, json={"variables": variables})

    async def hangup(self, channel_id: str, reason_code: int | None = None) -> bool:
        """``DELETE /channels/{id}``; ``reason_code`` is a Q.850 hangup cause.

        Returns False when the channel was already gone (not an error).
        """
        params = {"reason_code": reason_code} if reason_code else None
        try:
            await self.request("DELETE", f"/channels/{channel_id}", params=params)
        except AriError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def answer(self, channel_id: str) -> None:
        """``POST /channels/{id}/answer``."""
        await self.request("POST", f"/channels/{channel_id}/answer")

    async def ring(self, channel_id: str) -> None:
        """``POST /channels/{id}/ring``: 180 before answer, in-band ringback after."""
        await self.request("POST", f"/channels/{channel_id}/ring")

    async def ring_stop(self, channel_id: str) -> None:
        """``DELETE /channels/{id}/ring``."""
        await self.request("DELETE", f"/channels/{channel_id}/ring", ok404=True)

    async def play(self, channel_id: str, media: str, playback_id: str | None = None) -> None:
        """``POST /channels/{id}/play`` (``media`` such as ``tone:busy``)."""
        params = {"media": media}
        if playback_id:
            params["playbackId"] = playback_id
        await self.request("POST", f"/channels/{channel_id}/play", params=params)

    async def stop_playback(self, playback_id: str) -> None:
        """``DELETE /playbacks/{id}``; a playback that already ended is fine."""
        await self.request("DELETE", f"/playbacks/{playback_id}", ok404=True)

    async def get_variable(self, channel_id: str, name: str) -> str | None:
        """``GET /channels/{id}/variable``; None when unset.

        A dialplan function that fails (``PJSIP_HEADER(read,...)`` for a
        header that is absent) answers 500 "Unable to read provided function"
        (field report C11): that is also None, not an Asterisk failure.
        """
        try:
            res = await self.request("GET", f"/channels/{channel_id}/variable",
                                     params={"variable": name}, ok404=True)
        except AriError as exc:
            if exc.status == 500 and name.endswith(")"):
                return None
            raise
        return None if res is None else res.get("value")

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        """``POST /channels/{id}/variable``."""
        await self.request("POST", f"/channels/{channel_id}/variable",
                           params={"variable": name, "value": value})

    async def channel(self, channel_id: str) -> dict | None:
        """``GET /channels/{id}``; None when the channel does not exist."""
        return await self.request("GET", f"/channels/{channel_id}", ok404=True)

    async def channels(self) -> list[dict]:
        """``GET /channels``: every channel in Asterisk."""
        return await self.request("GET", "/channels") or []

    # --- bridges ---------------------------------------------------------
    async def create_bridge(self, bridge_id: str, name: str) -> dict:
        """``POST /bridges/{id}``: a mixing bridge."""
        return await self.request("POST", f"/bridges/{bridge_id}",
                                  params={"type": "mixing", "name": name})

    async def add_channels(self, bridge_id: str, channel_ids: list[str]) -> None:
        """``POST /bridges/{id}/addChannel``."""
        await self.request("POST", f"/bridges/{bridge_id}/addChannel",
                           params={"channel": ",".join(channel_ids)})

    async def destroy_bridge(self, bridge_id: str) -> bool:
        """``DELETE /bridges/{id}``; False when it was already gone."""
        try:
            await self.request("DELETE", f"/bridges/{bridge_id}")
        except AriError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def bridges(self) -> list[dict]:
        """``GET /bridges``."""
        return await self.request("GET", "/bridges") or []
