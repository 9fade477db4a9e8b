"""ARI REST calls used by the Click2Dial Stasis app (Asterisk 22).

Every method is a coroutine on the service's event loop. Variables go in the
JSON body under ``variables`` (field report C10), never in the query string.
Hanging up a channel or destroying a bridge that is already gone is not an
error (404 → ``False``), so teardown is idempotent (field report C07).

Docs: https://docs.asterisk.org/Asterisk_22_Documentation/API_Documentation/Asterisk_REST_Interface/
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson
from yarl import URL

from platforma_c2d.ari.wsrequests import RESPONSE_TYPE, SocketGone, SocketRequests

log = logging.getLogger(__name__)


#: The header of a request with a JSON body (one dict for every request).
_JSON_HEADERS = {"Content-Type": "application/json"}

# The call's bridge when nothing else is said: Asterisk's multi-party mixer. See create_bridge.
BRIDGE_TYPE = "mixing,video_sfu"


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
    ``timeout_s``: per-request timeout in seconds; ``requests``: ``"http"``, or
    ``"websocket"`` to send requests over the event socket while it answers them
    (``self.socket``, handed to the :class:`EventStream`; HTTP otherwise,
    docs/decisions/0021). Raises ``AriError`` (4xx/5xx) or ``AriUnavailable``
    (no answer) from every request method, whichever way the request went.
    """

    def __init__(self, url: str, username: str, password: str, app: str, timeout_s: float = 10.0,
                 requests: str = "http"):
        self.url, self.app = url.rstrip("/"), app
        self.socket = SocketRequests(app, timeout_s) if requests == "websocket" else None
        # The Basic credentials as a header of their own: aiohttp 3.14 deprecates
        # BasicAuth and the session's ``auth`` (gone in 4), and this works on every 3.x.
        token = base64.b64encode(f"{username}:{password}".encode("utf-8")).decode("ascii")
        self._headers = {"Authorization": "Basic " + token}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._http: aiohttp.ClientSession | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        # Created lazily on the loop that uses it (the client is built in another thread).
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                # Idle connections are dropped after 5 s, well before Asterisk's
                # own session_keep_alive (15 s), so a request never goes out
                # on a connection that Asterisk is closing at the same moment.
                connector=aiohttp.TCPConnector(limit=32, keepalive_timeout=5.0),
                headers=self._headers, timeout=self._timeout,
                # No "Content-Type: application/octet-stream" on a POST without a body.
                skip_auto_headers=("Content-Type",))
        return self._http

    async def close(self) -> None:
        """Close the connection pool."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _url(self, path: str, params: dict | None) -> URL:
        # yarl quotes the path (a channel id with a space becomes %20, %2F stays);
        # the query is encoded here, every reserved character percent-encoded
        # ("PJSIP%2F1001", "PJSIP_HEADER%28read%2C...%29", "c2d%2Cagent%2C..."),
        # and sent as it is: Asterisk decodes it back to the same text.
        url = URL(self.url + "/ari" + path)
        if not params:
            return url
        query = urlencode([(k, _query_value(v)) for k, v in params.items()])
        return URL(f"{url}?{query}", encoded=True)

    async def request(self, method: str, path: str, *, params: dict | None = None,
                      json: Any = None, ok404: bool = False, http: bool = False) -> Any:
        """One ARI request; returns the decoded JSON body (or None when empty).

        ``ok404``: a 404 returns ``None`` instead of raising. ``http``: over
        HTTP even when requests go over the event socket (see :meth:`play`).
        """
        # UTF-8, no spaces (docs/decisions/0020); a value that is no JSON raises TypeError
        data = None if json is None else orjson.dumps(json)
        if self.socket is not None and self.socket.ready and not http:
            status, content = await self._over_socket(method, path, params, data)
        else:
            status, content = await self._over_http(method, path, params, data)
        if status == 404 and ok404:
            return None
        if status >= 400:
            text = content.decode("utf-8", errors="replace")
            try:
                body = orjson.loads(content)
                message = body.get("message", text) if isinstance(body, dict) else text
            except ValueError:
                message = text
            raise AriError(status, str(message)[:200], method, path)
        if not content:
            return None
        try:
            return orjson.loads(content)
        except ValueError:
            return None

    async def _over_http(self, method: str, path: str, params: dict | None,
                         data: bytes | None) -> tuple[int, bytes]:
        headers = None if data is None else _JSON_HEADERS
        try:
            async with self.http.request(method, self._url(path, params), data=data,
                                         headers=headers) as resp:
                return resp.status, await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise AriUnavailable(f"{method} {path}: {type(exc).__name__}") from exc

    async def _over_socket(self, method: str, path: str, params: dict | None,
                           data: bytes | None) -> tuple[int, bytes]:
        # The path's segments percent-encoded as over HTTP (Asterisk decodes each);
        # the query as pairs of plain text, which Asterisk takes as they are.
        pairs = [(k, _query_value(v)) for k, v in params.items()] if params else None
        try:
            return await self.socket.send(method, quote(path, safe="/"), pairs, data)
        except SocketGone as exc:
            if not exc.sent:        # the socket closed under it: HTTP, as while it is down
                return await self._over_http(method, path, params, data)
            raise AriUnavailable(f"{method} {path}: {exc} (event socket)") from exc
        except asyncio.TimeoutError as exc:
            raise AriUnavailable(f"{method} {path}: {type(exc).__name__} (event socket)") from exc

    # --- Asterisk --------------------------------------------------------
    async def asterisk_info(self) -> dict:
        """``GET /asterisk/info``."""
        return await self.request("GET", "/asterisk/info")

    async def modules(self) -> list[dict]:
        """``GET /asterisk/modules``: every module with its ``name`` and ``status``."""
        return await self.request("GET", "/asterisk/modules") or []

    async def global_variable(self, name: str) -> str | None:
        """``GET /asterisk/variable``: a global variable of the dialplan; None when
        Asterisk knows none of that name (404), ``""`` when it is empty."""
        res = await self.request("GET", "/asterisk/variable", params={"variable": name}, ok404=True)
        if res is None:
            return None
        return str(res.get("value", "")) if isinstance(res, dict) else ""

    async def object_config(self, config_class: str, object_type: str, object_id: str) -> list[dict] | None:
        """``GET /asterisk/config/dynamic/{class}/{type}/{id}``: an object's settings as
        ``[{"attribute": ..., "value": ...}]`` (e.g. ``res_pjsip``, ``endpoint``, ``1001``);
        None when there is no such object."""
        return await self.request("GET", f"/asterisk/config/dynamic/{config_class}/{object_type}/{object_id}",
                                  ok404=True)

    async def endpoints(self, tech: str) -> list[dict]:
        """``GET /endpoints/{tech}``: the endpoints of one technology (``PJSIP``)."""
        return await self.request("GET", f"/endpoints/{tech}") or []

    async def endpoint(self, tech: str, resource: str) -> dict | None:
        """``GET /endpoints/{tech}/{resource}``; None when it does not exist."""
        return await self.request("GET", f"/endpoints/{tech}/{resource}", ok404=True)

    # --- applications ----------------------------------------------------
    async def subscribe(self, event_source: str) -> None:
        """``POST /applications/{app}/subscription``: our app gets the events of
        ``event_source`` (``channel:<id>``) although it never enters Stasis."""
        await self.request("POST", f"/applications/{self.app}/subscription",
                           params={"eventSource": event_source})

    async def set_event_filter(self, allowed: list[str]) -> None:
        """``PUT /applications/{app}/eventFilter``: Asterisk sends our app only the
        event ``type``s of ``allowed`` (and ``RESTResponse``, the answers to requests
        sent over the event socket, when the client sends them there)."""
        if self.socket is not None and RESPONSE_TYPE not in allowed:
            allowed = [*allowed, RESPONSE_TYPE]
        await self.request("PUT", f"/applications/{self.app}/eventFilter",
                           json={"allowed": [{"type": t} for t in allowed]})

    # --- channels --------------------------------------------------------
    async def originate(self, *, endpoint: str, channel_id: str, app_args: str,
                        variables: dict[str, str], timeout_s: int,
                        originator: str | None = None, other_channel_id: str | None = None,
                        formats: str | None = None) -> dict:
        """``POST /channels``: dial ``endpoint`` now; the channel enters our app when answered.

        Asterisk subscribes the app to the channel at once, so its ringing and
        hangup events arrive before StasisStart. An originated channel is
        Party A of its own CDR, so an unanswered leg still gets a CDR row.
        ``channel_id`` is chosen by us before the request (field report C01);
        ``originator``: the channel this one is dialled for (shared linkedid);
        ``other_channel_id``: the id of ``;2`` when ``endpoint`` is a Local channel;
        ``formats``: the channel's codecs (``ulaw,alaw``) when there is no
        ``originator`` to take them from (Asterisk otherwise gives a Local
        channel every audio format, and it runs as ``slin192``).
        """
        params = {"endpoint": endpoint, "app": self.app, "appArgs": app_args,
                  "channelId": channel_id, "timeout": timeout_s}
        if originator:
            params["originator"] = originator  # same linkedid in the CDRs
        if other_channel_id:
            params["otherChannelId"] = other_channel_id
        if formats:
            params["formats"] = formats
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

    async def continue_in_dialplan(self, channel_id: str, context: str, extension: str,
                                   priority: int = 1) -> None:
        """``POST /channels/{id}/continue``: the channel leaves the app for the dialplan
        at ``context``, ``extension``, ``priority``. Raises ``AriError`` (404: no such
        channel; 409: not in the app)."""
        await self.request("POST", f"/channels/{channel_id}/continue",
                           params={"context": context, "extension": extension, "priority": priority})

    async def answer(self, channel_id: str) -> None:
        """``POST /channels/{id}/answer``."""
        await self.request("POST", f"/channels/{channel_id}/answer")

    async def ring(self, channel_id: str) -> None:
        """``POST /channels/{id}/ring``: 180 before answer, in-band ringback after."""
        await self.request("POST", f"/channels/{channel_id}/ring")

    async def play(self, channel_id: str, media: str, playback_id: str | None = None) -> None:
        """``POST /channels/{id}/play`` (``media`` such as ``tone:busy``).

        Always over HTTP: sent over the event socket (``[ari] requests =
        "websocket"``), Asterisk 22.10 never answered it (the agent's ringback,
        a playback since it is stopped by its id), and every later request on
        that socket waited behind it until the call failed."""
        params = {"media": media}
        if playback_id:
            params["playbackId"] = playback_id
        await self.request("POST", f"/channels/{channel_id}/play", params=params, http=True)

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

    async def get_variables(self, channel_id: str, names: list[str]) -> dict[str, str] | None:
        """``GET /channels/{id}/variables`` (Asterisk 22.10): several in one request.

        Returns ``{name: value}`` for every name, or None when Asterisk
        could not read one of them: it then answers the whole request with
        an error (500 for a dialplan function that fails, 404 for an unset
        variable or a channel that is gone, 404 too from an Asterisk that
        predates the request), so the caller reads them one by one to learn
        which. Names are sent comma-separated; a function's own commas stay
        inside its parentheses. Raises ``AriUnavailable`` only.
        """
        try:
            res = await self.request("GET", f"/channels/{channel_id}/variables",
                                     params={"variables": ",".join(names)})
        except AriUnavailable:
            raise
        except AriError:
            return None
        values = (res or {}).get("variables") if isinstance(res, dict) else None
        if not isinstance(values, dict) or not all(isinstance(values.get(n), str) for n in names):
            return None
        return {n: values[n] for n in names}

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        """``POST /channels/{id}/variable``."""
        await self.request("POST", f"/channels/{channel_id}/variable",
                           params={"variable": name, "value": value})

    async def set_variables(self, channel_id: str, variables: dict[str, str]) -> None:
        """``POST /channels/{id}/variables`` (Asterisk 22.10): several in one request.

        Asterisk sets them in order and stops at the first it cannot set,
        answering 400 (404: the channel is gone, or an Asterisk that
        predates the request). Raises ``AriError`` / ``AriUnavailable``.
        """
        await self.request("POST", f"/channels/{channel_id}/variables", json={"variables": variables})

    async def channel(self, channel_id: str) -> dict | None:
        """``GET /channels/{id}``; None when the channel does not exist."""
        return await self.request("GET", f"/channels/{channel_id}", ok404=True)

    async def channels(self) -> list[dict]:
        """``GET /channels``: every channel in Asterisk."""
        return await self.request("GET", "/channels") or []

    # --- bridges ---------------------------------------------------------
    async def create_bridge(self, bridge_id: str, name: str, bridge_type: str = BRIDGE_TYPE) -> dict:
        """``POST /bridges/{id}``: the call's bridge.

        The default type ``mixing,video_sfu`` keeps the bridge on Asterisk's
        multi-party mixer even with two legs. A two-party mixing bridge would
        instead tell each leg who the other is (a connected-line update, sent
        to the trunk as a re-INVITE or UPDATE whose P-Asserted-Identity is the
        agent's extension, whatever our CLID) and would let direct media
        re-INVITE the legs; the multi-party mixer does neither. SPEC §3.7,
        docs/decisions/0005-bridge-keeps-identities-apart.md. The two-party
        ``mixing,proxy_media`` is only for legs that keep their own connected
        line (``calls.connected_line``, docs/decisions/0015).
        """
        return await self.request("POST", f"/bridges/{bridge_id}",
                                  params={"type": bridge_type, "name": name})

    async def add_channels(self, bridge_id: str, channel_ids: list[str]) -> None:
        """``POST /bridges/{id}/addChannel``."""
        await self.request("POST", f"/bridges/{bridge_id}/addChannel",
                           params={"channel": ",".join(channel_ids)})

    async def destroy_bridge(self, bridge_id: str) -> bool:
        """``DELETE /bridges/{id}``; False when it was already gone.

        A 409 "Bridge not in Stasis application" answers a DELETE that
        arrives while Asterisk is still destroying the bridge: gone as well.
        """
        try:
            await self.request("DELETE", f"/bridges/{bridge_id}")
        except AriError as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    async def bridges(self) -> list[dict]:
        """``GET /bridges``."""
        return await self.request("GET", "/bridges") or []


def _query_value(value: Any) -> str:
    """A query parameter's text: ``true``/``false`` for booleans, ``""`` for None, else ``str()``."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)
