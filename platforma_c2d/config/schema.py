"""The typed configuration: one frozen dataclass per TOML ``[section]``
and :class:`Config`, which holds them all (SPEC section 7).

Every key has a default (the dataclass field default below, mirrored by
``config/platforma-c2d.sample.toml``). Each field's metadata (see ``_opt``)
drives parsing and checking in :mod:`platforma_c2d.config.loader`: its kind,
what it must be, its checks and how it is shown. Secrets (``ari.password``,
token hashes, the password part of a URL) never appear in a ``repr`` or
:meth:`Config.redacted` (SPEC section 9).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from platforma_c2d import rules
from platforma_c2d.config.auto_answer import AUTO_ANSWER_MODES, is_agent_mode
from platforma_c2d.config.checks import (
    MASK,
    _ok_ari_url,
    _ok_endpoint,
    _ok_http_url,
    _ok_listen,
    _ok_prefix,
    _ok_printable,
    _ok_sha256,
    _ok_store_url,
    _in_range,
    mask_url,
    split_listen,
)
from platforma_c2d.config.fields import HOUR_S, _FSECONDS, _RING_SECONDS, _SECONDS, _fseconds, _seconds
from platforma_c2d.config.fields import option as _opt

#: ``[dial] bridging``: who bridges a REST call's two legs (ADR 0018).
BRIDGING_MODES = ("stasis", "dialplan")
from platforma_c2d.config.cluster import ClusterConfig
from platforma_c2d.config.metrics import MetricsConfig
from platforma_c2d.config.pages import PagesConfig
from platforma_c2d.config.pools import ClidPoolConfig

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("json", "text")
#: ``[ari] requests``: how the service sends its ARI requests.
ARI_REQUESTS = ("http", "websocket")




@dataclass(frozen=True)
class AriConfig:
    """``[ari]``: how to reach Asterisk's REST Interface and its event WebSocket."""

    url: str = _opt(
        "http://127.0.0.1:8088", "str",
        "an http(s)://host[:port] URL without a path or credentials", _ok_ari_url,
        show=mask_url, norm=lambda v: v.rstrip("/"),
    )
    username: str = _opt(
        "c2d", "str", "a non-empty user name without ':'",
        lambda v: _ok_printable(v) and ":" not in v,
    )
    password: str = _opt(
        "change-me", "str", "a non-empty string of printable characters", _ok_printable,
        secret=True,
    )
    app: str = _opt(
        "click2dial", "str", "a Stasis application name (letters, digits, _ . -)",
        lambda v: re.fullmatch(r"[A-Za-z0-9_.-]+", v) is not None,
    )
    reconnect_max_backoff_s: float = _opt(30.0, "float", _FSECONDS, _fseconds)
    request_timeout_s: float = _opt(10.0, "float", _FSECONDS, _fseconds)
    # How ARI requests travel: one HTTP request each, or as messages on the
    # event WebSocket (Asterisk 22.4+; HTTP while the socket is down or does
    # not answer). docs/decisions/0021.
    requests: str = _opt(
        "http", "str", 'one of "http", "websocket"', lambda v: v in ARI_REQUESTS,
    )
    # Where browser phones connect to Asterisk's HTTP server: check fails
    # if ARI answers there (docs/security.md).
    browser_urls: tuple[str, ...] = _opt(
        ("https://127.0.0.1:8089",), "strs", "a list of http(s)://host[:port] URLs",
        item_ok=_ok_ari_url, item_desc="an http(s)://host[:port] URL without a path",
    )


class _Listener:
    """``host`` and ``port`` properties for a section with a ``listen`` key."""

    listen: str

    @property
    def host(self) -> str:
        """The host part of ``listen``, IPv6 without brackets."""
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """The TCP port of ``listen``."""
        return split_listen(self.listen)[1]


_LISTEN = "host:port with port 1-65535 (IPv6 as [::1]:{})"


@dataclass(frozen=True)
class HttpConfig(_Listener):
    """``[http]``: the REST API server."""

    listen: str = _opt("127.0.0.1:8080", "str", _LISTEN.format(8080), _ok_listen)
    threads: int = _opt(8, "int", "a positive integer (worker threads, at most 1024)", _in_range(0, 1024))
    # Slow clients (platforma_c2d/http/server.py): connections at once, the
    # seconds a request may take to arrive whole, the seconds a keep-alive
    # connection may stay idle.
    max_connections: int = _opt(500, "int", "a positive integer (connections, at most 100000)",
                                _in_range(0, 100_000))
    request_timeout_s: float = _opt(10.0, "float", _FSECONDS, _fseconds)
    idle_timeout_s: float = _opt(60.0, "float", _FSECONDS, _fseconds)
    # Browser pages (a CRM's own origin) allowed to call the API directly;
    # empty: no CORS answer at all (docs/api.md says why a backend is safer).
    cors_origins: tuple[str, ...] = _opt(
        (), "strs", "a list of origins", item_ok=lambda v: re.fullmatch(
            r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?", v) is not None,
        item_desc="an origin: scheme://host[:port], no path, no '*'")


@dataclass(frozen=True)
class DialConfig:
    """``[dial]``: how the legs are originated (SPEC section 3). Seconds."""

    agent_endpoint: str = _opt(
        "PJSIP/{agent}", "str",
        "TECH/resource containing {agent} and no other placeholder", _ok_endpoint("agent"),
    )
    trunk_endpoint: str = _opt(
        "PJSIP/{number}@trunk", "str",
        "TECH/resource containing {number} and no other placeholder", _ok_endpoint("number"),
    )
    # Ring timeouts go to Asterisk's originate in milliseconds (a C int): an hour at most.
    agent_ring_timeout_s: int = _opt(30, "int", _RING_SECONDS, _in_range(0, HOUR_S))
    # A customer who takes a minute to answer is still answered (SPEC §3.9).
    callee_ring_timeout_s: int = _opt(90, "int", _RING_SECONDS, _in_range(0, HOUR_S))
    max_call_duration_s: int = _opt(14400, "int", _SECONDS, _seconds)
    tone_s: int = _opt(4, "int", f"a non-negative integer (seconds, at most {HOUR_S})",
                       _in_range(0, HOUR_S, low_included=True))
    confirm_external_agent: bool = _opt(False, "bool", "true or false")
    confirm_timeout_s: int = _opt(10, "int", _SECONDS, _seconds)
    auto_answer: str = _opt("off", "str", "one of " + ", ".join(AUTO_ANSWER_MODES),
                            lambda v: v in AUTO_ANSWER_MODES)
    auto_answer_agents: tuple[str, ...] = _opt(
        (), "strs", "a list of EXTENSION:MODE items", item_ok=is_agent_mode,
        item_desc="an extension (3-4 digits), ':' and one of " + ", ".join(AUTO_ANSWER_MODES),
    )
    # A context name = callee legs through Local/<number>@<context>/n, so
    # their CDR row names the number in dst (ADR 0014); "" = originated
    # straight to trunk_endpoint (dst = s in their row).
    trunk_leg_context: str = _opt(
        "c2d-trunk-leg", "str", "empty, or a dialplan context name (letters, digits, _ . -)",
        lambda v: v == "" or re.fullmatch(r"[A-Za-z0-9_.-]{1,79}", v) is not None,
    )
    # A context name = a REST call's agent leg (an extension) through
    # Local/<callee>@<context>/n: its CDR row names the agent in src and the
    # callee in dst (ADR 0014); "" = originated straight to agent_endpoint
    # (dst = s). An external agent's leg is a trunk leg (trunk_leg_context).
    agent_leg_context: str = _opt(
        "c2d-agent-leg", "str", "empty, or a dialplan context name (letters, digits, _ . -)",
        lambda v: v == "" or re.fullmatch(r"[A-Za-z0-9_.-]{1,79}", v) is not None,
    )
    # Who bridges a REST call's agent (an extension) and callee: "stasis" = the
    # service, in its Stasis app; "dialplan" = Asterisk's own Dial() in our
    # [c2d-native-call] context, the service following it (ADR 0018).
    bridging: str = _opt("stasis", "str", 'one of "stasis", "dialplan"', lambda v: v in BRIDGING_MODES)


@dataclass(frozen=True)
class TrunkConfig:
    """``[trunk]``: what the carrier behind ``[dial] trunk_endpoint`` allows
    (SPEC section 3.8). Legs through the trunk (callees, external agents)
    are paced by ``calls.pacing.TrunkPacer``."""

    max_calls_per_second: float = _opt(
        0.0, "float", "a non-negative number (new legs per second; 0 = no limit; at most 1000)",
        _in_range(0, 1000, low_included=True))
    max_wait_s: float = _opt(5.0, "float", _FSECONDS, _fseconds)
    hold_after_503_s: float = _opt(
        10.0, "float", f"a non-negative number (seconds, at most {HOUR_S})",
        _in_range(0, HOUR_S, low_included=True))
    hep_listen: str = _opt("", "str", "empty (off) or host:port where Asterisk's HEP capture "
                           "(res_hep_pjsip) is received", lambda v: v == "" or _ok_listen(v))


_CLIDS = "a list of CLID numbers"
_CLID = "a CLID number (0 + 9 digits, or 27 + 9 digits)"


@dataclass(frozen=True)
class ClidConfig:
    """``[clid]``: the caller IDs presented to callees (SPEC sections 1, 7, 12).
    An empty ``pool`` is allowed; ``outbound_id: random`` is then refused
    for callers no ``[[clid.pools]]`` table serves. ``pool`` is the pool
    named ``default`` (policy ``random``)."""

    default: str = _opt("0115550000", "str", _CLID, rules.is_clid_number)
    pool: tuple[str, ...] = _opt(
        ("0115550001", "0115550002"), "strs", _CLIDS,
        item_ok=rules.is_clid_number, item_desc=_CLID,
    )
    allowed: tuple[str, ...] = _opt(
        (), "strs", _CLIDS, item_ok=rules.is_clid_number, item_desc=_CLID
    )
    pools: tuple[ClidPoolConfig, ...] = _opt((), "pools", "a list of [[clid.pools]] tables")


@dataclass(frozen=True)
class TokenConfig:
    """One ``[[auth.token]]``: a bearer token (by its SHA-256 hex digest, lower
    case), the agents it may dial for (empty = all) and a name for logs."""

    sha256: str = field(repr=False)
    agents: tuple[str, ...] = ()
    name: str = ""


def _lower_all(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(v.lower() for v in values)


@dataclass(frozen=True)
class AuthConfig:
    """``[auth]``: bearer tokens, stored as SHA-256 hex digests (lower case).
    ``tokens`` comes from the ``[[auth.token]]`` tables."""

    tokens_sha256: tuple[str, ...] = _opt(
        (), "strs", "a list of SHA-256 hex digests",
        item_ok=_ok_sha256, item_desc="64 hex characters (a SHA-256 hex digest)",
        secret=True, norm=_lower_all,
    )
    tokens: tuple[TokenConfig, ...] = _opt((), "tokens", "a list of [[auth.token]] tables")

    @property
    def any_token(self) -> bool:
        """Whether at least one token is configured."""
        return bool(self.tokens_sha256 or self.tokens)


def _prefixes() -> Any:
    return _opt(
        (), "strs", "a list of digit prefixes", item_ok=_ok_prefix, item_desc="ASCII digits"
    )


@dataclass(frozen=True)
class PolicyConfig:
    """``[policy]``: which numbers may be dialled. A number passes when it
    starts with an allow prefix (or the allow list is empty) and with no
    deny prefix; deny wins. ``agent_number_*`` apply to external agents; while
    both are empty, the callee lists do (``calls.policy.agent_number_lists``)."""

    callee_allow_prefixes: tuple[str, ...] = _prefixes()
    callee_deny_prefixes: tuple[str, ...] = _prefixes()
    agent_number_allow_prefixes: tuple[str, ...] = _prefixes()
    agent_number_deny_prefixes: tuple[str, ...] = _prefixes()


@dataclass(frozen=True)
class LimitsConfig:
    """``[limits]``: protection against abuse (SPEC section 9)."""

    max_active_calls_per_agent: int = _opt(1, "int", "a positive integer (calls, at most 1000000)",
                                           _in_range(0, 1_000_000))
    # Calls up at once placed through the API: for the whole service and per
    # token (a leaked token must not hold the trunk); 0 = no cap.
    max_active_calls: int = _opt(
        500, "int", "a non-negative integer (calls; 0 = no cap; at most 1000000)",
        _in_range(0, 1_000_000, low_included=True))
    max_active_calls_per_token: int = _opt(
        100, "int", "a non-negative integer (calls; 0 = no cap; at most 1000000)",
        _in_range(0, 1_000_000, low_included=True))
    writes_per_minute: int = _opt(
        60, "int",
        "a non-negative integer (POST and DELETE requests per minute per token; 0 = unlimited; "
        "at most 1000000)",
        _in_range(0, 1_000_000, low_included=True),
    )
    # Reads apart: a CRM following five calls by polling each once a second
    # makes 300 reads a minute, which must not be refused (SPEC section 2).
    reads_per_minute: int = _opt(
        1200, "int",
        "a non-negative integer (GET requests per minute per token; 0 = unlimited; at most 1000000)",
        _in_range(0, 1_000_000, low_included=True),
    )
    idempotency_window_s: int = _opt(86400, "int", _SECONDS, _seconds)
    # Token guessing: per source address (http/failed_auth.py), never per token.
    failed_auth_per_minute: int = _opt(
        30, "int", "a non-negative integer (failed authentications per minute per address; 0 = no limit; "
        "at most 1000000)", _in_range(0, 1_000_000, low_included=True))


@dataclass(frozen=True)
class StoreConfig:
    """``[store]``: the call journal, a SQLAlchemy URL, and how long ended
    calls are kept (``store/retention.py``). Its ``repr`` masks a password in
    the URL."""

    url: str = _opt(
        "sqlite:////var/lib/platforma-c2d/calls.sqlite3", "str",
        "a SQLAlchemy URL (dialect[+driver]://...)", _ok_store_url, show=mask_url,
    )
    retention_days: int = _opt(
        0, "int", "a non-negative integer (days; 0 = keep every call; at most 36500)",
        _in_range(0, 36_500, low_included=True))

    def __repr__(self) -> str:
        return f"StoreConfig(url={mask_url(self.url)!r}, retention_days={self.retention_days!r})"


@dataclass(frozen=True)
class AgiConfig(_Listener):
    """``[agi]``: the FastAGI server (SPEC section 6)."""

    listen: str = _opt("127.0.0.1:4573", "str", _LISTEN.format(4573), _ok_listen)
    max_connections: int = _opt(256, "int", "a positive integer (connections, at most 100000)",
                                _in_range(0, 100_000))
    read_timeout_s: float = _opt(10.0, "float", _FSECONDS, _fseconds)
    # Connections that have not shown the secret yet are counted apart
    # (agi/slots.py): they never take the places of Asterisk's sessions.
    max_unauthenticated: int = _opt(256, "int", "a positive integer (connections, at most 100000)",
                                    _in_range(0, 100_000))
    auth_timeout_s: float = _opt(5.0, "float", _FSECONDS, _fseconds)
    # Asterisk's AstDB c2d/agi_secret must equal it; asked on every session (docs/security.md).
    secret: str = _opt(
        "", "str", "8-200 characters of A-Z a-z 0-9 . _ ~ + / = - (\"\" = none asked)",
        lambda v: v == "" or re.fullmatch(r"[A-Za-z0-9._~+/=-]{8,200}", v) is not None,
        secret=True)


@dataclass(frozen=True)
class WebhookEndpoint:
    """One ``[[webhooks.endpoints]]``: where call events are POSTed (SPEC section 10).

    ``url``: http(s) URL; ``secret``: the HMAC-SHA256 key of the signature;
    ``types``, ``agents``, ``tokens``: only events of these types
    (``call.ended``...), of calls of these agents, placed with these token
    names (empty = all); ``name``: names its deliveries in the store and
    the metrics (default ``endpoint-<n>``, n from 1 in file order).
    """

    url: str
    secret: str = field(repr=False)
    name: str = ""
    types: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()

    def wants(self, event_type: str, agent: str, token_name: str) -> bool:
        """Whether an event of ``event_type`` about a call of ``agent`` placed with
        ``token_name`` passes this endpoint's filters."""
        return ((not self.types or event_type in self.types) and (not self.agents or agent in self.agents)
                and (not self.tokens or token_name in self.tokens))


@dataclass(frozen=True)
class WebhooksConfig:
    """``[webhooks]``: signed deliveries of call events (SPEC section 10). Seconds."""

    endpoints: tuple[WebhookEndpoint, ...] = _opt((), "endpoints",
                                                  "a list of [[webhooks.endpoints]] tables")
    allowed_url_prefixes: tuple[str, ...] = _opt(
        (), "strs", "a list of URL prefixes", item_ok=_ok_http_url,
        item_desc="an http(s)://host[:port]/ URL prefix (a host, then at least the '/')",
    )
    callback_secret: str = _opt("", "str", "printable characters", lambda v: v.isprintable(),
                                secret=True)
    retry_for_s: int = _opt(86400, "int", _SECONDS, _seconds)
    timeout_s: float = _opt(10.0, "float", _FSECONDS, _fseconds)
    max_in_flight: int = _opt(32, "int", "a positive integer (deliveries at once, at most 1000)",
                              _in_range(0, 1000))
    max_in_flight_per_endpoint: int = _opt(
        4, "int", "a positive integer (deliveries at once to one URL, at most 1000)", _in_range(0, 1000))
    max_streams: int = _opt(
        4, "int", "a non-negative integer (open event streams, at most 10000)",
        _in_range(0, 10_000, low_included=True))
    # A token's share of them: a leaked or looping client cannot hold every stream.
    max_streams_per_token: int = _opt(
        2, "int", "a non-negative integer (open event streams of one token; 0 = no cap of its own; "
        "at most 10000)", _in_range(0, 10_000, low_included=True))


@dataclass(frozen=True)
class LogConfig:
    """``[log]``: logging level and line format."""

    level: str = _opt(
        "INFO", "str", "one of " + ", ".join(LOG_LEVELS),
        lambda v: v.upper() in LOG_LEVELS, norm=str.upper,
    )
    format: str = _opt(
        "json", "str", "one of " + ", ".join(LOG_FORMATS),
        lambda v: v.lower() in LOG_FORMATS, norm=str.lower,
    )


@dataclass(frozen=True)
class Config:
    """The whole configuration, one attribute per TOML section."""

    ari: AriConfig = field(default_factory=AriConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    dial: DialConfig = field(default_factory=DialConfig)
    trunk: TrunkConfig = field(default_factory=TrunkConfig)
    clid: ClidConfig = field(default_factory=ClidConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    agi: AgiConfig = field(default_factory=AgiConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    log: LogConfig = field(default_factory=LogConfig)
    pages: PagesConfig = field(default_factory=PagesConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    def redacted(self) -> dict[str, dict[str, Any]]:
        """Return the configuration as plain JSON-able data (section -> TOML
        key -> value, lists for tuples) with every secret replaced by
        ``"***"`` and URL passwords masked: for ``check`` output and logs."""
        out: dict[str, dict[str, Any]] = {}
        for section in dataclasses.fields(self):
            obj = getattr(self, section.name)
            out[section.name] = {
                _toml_key(f): _redact(f, getattr(obj, f.name)) for f in dataclasses.fields(obj)
            }
        return out


#: TOML section name -> its dataclass, in file order.
SECTIONS: dict[str, type] = {
    f.name: f.default_factory for f in dataclasses.fields(Config)  # type: ignore[misc]
}


def _toml_key(f: dataclasses.Field) -> str:
    return "token" if f.metadata.get("kind") == "tokens" else f.name


def _redact(f: dataclasses.Field, value: Any) -> Any:
    meta = f.metadata
    if meta.get("kind") == "pools":
        return [pool.as_dict() for pool in value]
    if meta.get("kind") == "tokens":
        return [{"sha256": MASK, "agents": list(t.agents), "name": t.name} for t in value]
    if meta.get("kind") == "endpoints":
        return [{"url": mask_url(e.url), "secret": MASK, "name": e.name, "types": list(e.types),
                 "agents": list(e.agents), "tokens": list(e.tokens)} for e in value]
    if meta.get("secret"):
        return [MASK] * len(value) if isinstance(value, tuple) else MASK
    if meta.get("show"):
        return meta["show"](value)
    return list(value) if isinstance(value, tuple) else value
