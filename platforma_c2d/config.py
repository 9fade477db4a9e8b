"""TOML file + environment -> a typed, validated :class:`Config` (SPEC section 7).

One TOML file, ``[section]`` tables of ``key = value``; every key has a
default (the dataclass field default below, mirrored by
``config/platforma-c2d.sample.toml``). An environment variable
``PLATFORMA_C2D_<SECTION>_<KEY>`` (upper case) overrides the file. Values
from the environment are strings: integers and numbers are parsed, booleans
are ``true/false/1/0/yes/no``, lists are a JSON array or comma-separated,
and ``PLATFORMA_C2D_AUTH_TOKEN`` (the ``[[auth.token]]`` tables) is a JSON
array of objects.
``PLATFORMA_C2D_CONFIG`` (the config path, for the CLI) is not a setting and
is ignored here.

Loading never stops at the first mistake: :class:`ConfigError` lists every
problem at once, one line each, naming the key (and the variable when the
value came from the environment). Secrets (``ari.password``, token hashes,
the password part of a URL) never appear in a message, a ``repr`` or
:meth:`Config.redacted` (SPEC section 9).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import math
import os
import re
import string
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from platforma_c2d import rules

ENV_PREFIX = "PLATFORMA_C2D_"
#: Variables with the prefix that are not settings (read by the CLI).
ENV_IGNORED = frozenset({"PLATFORMA_C2D_CONFIG", "PLATFORMA_C2D_TOKEN"})

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("json", "text")
MASK = "***"

_SHOW_MAX = 60  # characters of a refused value echoed in a message
_BAD = object()  # a value that failed to parse


class ConfigError(Exception):
    """The configuration is unusable.

    Attributes:
        problems: one human-readable line per problem, each naming the key
            (``"dial.agent_ring_timeout_s: must be ..."``) or the file or
            environment variable at fault. Never contains a secret.
    """

    problems: list[str]

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"invalid configuration ({n} problem{'s' if n != 1 else ''}):"
        return "\n  - ".join([head, *self.problems])


# --------------------------------------------------------------------------
# Value checks: pure predicates on an already typed value.
# --------------------------------------------------------------------------


def split_listen(value: str) -> tuple[str, int]:
    """Split a listen address ``host:port`` (IPv6 as ``[::1]:8080``).

    Returns ``(host, port)``, the host without brackets. Raises
    :class:`ValueError` when the host is empty or not a host name or IP
    address, or the port is not ASCII digits in 1-65535.
    """
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})|([A-Za-z0-9.-]+):([0-9]{1,5})", value)
    if not m:
        raise ValueError(f"not host:port: {value!r}")
    host, port = (m[1], m[2]) if m[1] else (m[3], m[4])
    if m[1]:
        ipaddress.IPv6Address(host)  # raises ValueError
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port out of range: {port}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Return whether ``host`` is ``localhost`` or a loopback IP address
    (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ok_listen(value: str) -> bool:
    try:
        split_listen(value)
    except ValueError:
        return False
    return True


def _ok_ari_url(value: str) -> bool:
    m = re.fullmatch(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?/?", value)
    return bool(m) and _ok_listen(f"{m[1]}:{m[2] or 80}")


def _ok_endpoint(placeholder: str) -> Callable[[str], bool]:
    """TECH/resource with ``{placeholder}`` in it and no other placeholder."""

    def ok(value: str) -> bool:
        try:
            parts = list(string.Formatter().parse(value))
        except ValueError:  # unbalanced braces
            return False
        names = [(name, conv, spec) for _, name, spec, conv in parts if name is not None]
        return (
            re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*/\S+", value) is not None
            and bool(names)
            and all(n == (placeholder, None, "") for n in names)
        )

    return ok


def _ok_printable(value: str) -> bool:
    return value != "" and value.isprintable()


def _positive(value: float) -> bool:
    return value > 0


def _non_negative(value: float) -> bool:
    return value >= 0


def _ok_sha256(value: str) -> bool:
    return re.fullmatch(r"[0-9A-Fa-f]{64}", value) is not None


def _ok_prefix(value: str) -> bool:
    return re.fullmatch(r"[0-9]+", value) is not None


def _ok_store_url(value: str) -> bool:
    return re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*://\S*", value) is not None


def mask_url(url: str) -> str:
    """Return ``url`` with the password of its user info (``user:pw@``)
    replaced by ``***``; user info without ``:`` is masked whole."""
    m = re.fullmatch(r"([^:/?#]*://)([^/?#]*)(.*)", url, re.S)
    if not m:
        return MASK if "@" in url else url
    if "@" not in m[2]:
        return url
    userinfo, host = m[2].rsplit("@", 1)
    user = userinfo.split(":", 1)[0] + ":" + MASK if ":" in userinfo else MASK
    return f"{m[1]}{user}@{host}{m[3]}"


# --------------------------------------------------------------------------
# The sections. Each field's metadata drives parsing and checking.
# --------------------------------------------------------------------------


def _opt(
    default: Any,
    kind: str,
    desc: str,
    ok: Callable[[Any], bool] | None = None,
    *,
    item_ok: Callable[[str], bool] | None = None,
    item_desc: str = "",
    secret: bool = False,
    show: Callable[[Any], str] | None = None,
    norm: Callable[[Any], Any] | None = None,
) -> Any:
    """A config key: its default, its kind (str, int, float, bool, strs),
    what it must be (``desc``, for messages), its checks and handling."""
    meta = dict(kind=kind, desc=desc, ok=ok, item_ok=item_ok, item_desc=item_desc,
                secret=secret, show=show, norm=norm)
    return field(default=default, repr=not secret, metadata=meta)


_SECONDS = "a positive integer (seconds)"
_FSECONDS = "a positive number (seconds)"


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
    reconnect_max_backoff_s: float = _opt(30.0, "float", _FSECONDS, _positive)
    request_timeout_s: float = _opt(10.0, "float", _FSECONDS, _positive)


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
    threads: int = _opt(8, "int", "a positive integer (worker threads)", _positive)


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
    agent_ring_timeout_s: int = _opt(30, "int", _SECONDS, _positive)
    callee_ring_timeout_s: int = _opt(45, "int", _SECONDS, _positive)
    max_call_duration_s: int = _opt(14400, "int", _SECONDS, _positive)
    tone_s: int = _opt(4, "int", "a non-negative integer (seconds)", _non_negative)
    confirm_external_agent: bool = _opt(False, "bool", "true or false")
    confirm_timeout_s: int = _opt(10, "int", _SECONDS, _positive)


_CLIDS = "a list of CLID numbers"
_CLID = "a CLID number (0 + 9 digits, or 27 + 9 digits)"


@dataclass(frozen=True)
class ClidConfig:
    """``[clid]``: the caller IDs presented to callees (SPEC sections 1, 7).
    An empty ``pool`` is allowed; ``outbound_id: random`` is then refused."""

    default: str = _opt("0115550000", "str", _CLID, rules.is_clid_number)
    pool: tuple[str, ...] = _opt(
        ("0115550001", "0115550002"), "strs", _CLIDS,
        item_ok=rules.is_clid_number, item_desc=_CLID,
    )
    allowed: tuple[str, ...] = _opt(
        (), "strs", _CLIDS, item_ok=rules.is_clid_number, item_desc=_CLID
    )


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
    deny prefix; deny wins. ``agent_number_*`` apply to external agents."""

    callee_allow_prefixes: tuple[str, ...] = _prefixes()
    callee_deny_prefixes: tuple[str, ...] = _prefixes()
    agent_number_allow_prefixes: tuple[str, ...] = _prefixes()
    agent_number_deny_prefixes: tuple[str, ...] = _prefixes()


@dataclass(frozen=True)
class LimitsConfig:
    """``[limits]``: protection against abuse (SPEC section 9)."""

    max_active_calls_per_agent: int = _opt(1, "int", "a positive integer (calls)", _positive)
    requests_per_minute: int = _opt(
        60, "int", "a non-negative integer (requests per minute per token; 0 = unlimited)",
        _non_negative,
    )
    idempotency_window_s: int = _opt(86400, "int", _SECONDS, _positive)


@dataclass(frozen=True)
class StoreConfig:
    """``[store]``: the call journal, a SQLAlchemy URL. Its ``repr`` masks a
    password in the URL."""

    url: str = _opt(
        "sqlite:////var/lib/platforma-c2d/calls.sqlite3", "str",
        "a SQLAlchemy URL (dialect[+driver]://...)", _ok_store_url, show=mask_url,
    )

    def __repr__(self) -> str:
        return f"StoreConfig(url={mask_url(self.url)!r})"


@dataclass(frozen=True)
class AgiConfig(_Listener):
    """``[agi]``: the FastAGI server (SPEC section 6)."""

    listen: str = _opt("127.0.0.1:4573", "str", _LISTEN.format(4573), _ok_listen)
    max_connections: int = _opt(64, "int", "a positive integer (connections)", _positive)
    read_timeout_s: float = _opt(10.0, "float", _FSECONDS, _positive)


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
    clid: ClidConfig = field(default_factory=ClidConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    agi: AgiConfig = field(default_factory=AgiConfig)
    log: LogConfig = field(default_factory=LogConfig)

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
    if meta.get("kind") == "tokens":
        return [{"sha256": MASK, "agents": list(t.agents), "name": t.name} for t in value]
    if meta.get("secret"):
        return [MASK] * len(value) if isinstance(value, tuple) else MASK
    if meta.get("show"):
        return meta["show"](value)
    return list(value) if isinstance(value, tuple) else value


# --------------------------------------------------------------------------
# Loading.
# --------------------------------------------------------------------------


def load_config(
    path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None
) -> Config:
    """Load the TOML file at ``path`` (``None``: defaults only), then apply
    ``PLATFORMA_C2D_*`` overrides from ``env`` (default ``os.environ``).

    Returns a validated :class:`Config`. Raises :class:`ConfigError` listing
    every problem: a missing or unreadable file, a TOML syntax error (with
    its line), an unknown section, key or variable, a wrong type or value.
    """
    problems: list[str] = []
    data: dict[str, Any] = {}
    if path is not None:
        name = os.fspath(path)
        try:
            with open(name, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            problems.append(f"{name}: config file not found")
        except OSError as exc:
            problems.append(f"{name}: cannot read config file ({exc.strerror or exc})")
        else:
            try:
                data = _parse_toml(raw.decode("utf-8"), name, problems)
            except UnicodeDecodeError as exc:
                problems.append(f"{name}: not UTF-8 (byte {exc.start})")
    return _build(data, os.environ if env is None else env, problems)


def loads_config(text: str, env: Mapping[str, str] | None = None) -> Config:
    """Like :func:`load_config`, from TOML ``text`` instead of a file."""
    problems: list[str] = []
    data = _parse_toml(text, "<config>", problems)
    return _build(data, os.environ if env is None else env, problems)


def _parse_toml(text: str, source: str, problems: list[str]) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{source}: invalid TOML: {exc}")
        return {}


def _hint(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {close[0]}?)" if close else f" (known: {', '.join(sorted(known))})"


def _keys(cls: type) -> dict[str, dataclasses.Field]:
    return {_toml_key(f): f for f in dataclasses.fields(cls)}


def _env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section}_{key}".upper()


def _build(data: dict[str, Any], env: Mapping[str, str], problems: list[str]) -> Config:
    given: dict[str, dict[str, tuple[Any, str, bool]]] = {s: {} for s in SECTIONS}
    for name, table in data.items():
        if name not in SECTIONS:
            problems.append(f"[{name}]: unknown section{_hint(name, list(SECTIONS))}")
        elif not isinstance(table, dict):
            problems.append(f"{name}: must be a table ([{name}])")
        else:
            keys = _keys(SECTIONS[name])
            for key, value in table.items():
                if key in keys:
                    given[name][key] = (value, f"{name}.{key}", False)
                else:
                    problems.append(f"{name}.{key}: unknown key{_hint(key, list(keys))}")

    by_env = {_env_name(s, k): (s, k) for s, cls in SECTIONS.items() for k in _keys(cls)}
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in ENV_IGNORED:
            continue
        if var not in by_env:
            problems.append(f"{var}: unknown environment variable{_hint(var, list(by_env))}")
            continue
        section, key = by_env[var]
        given[section][key] = (env[var], f"{section}.{key} (from {var})", True)

    values: dict[str, dict[str, Any]] = {}
    for section, cls in SECTIONS.items():
        values[section] = {}
        for key, f in _keys(cls).items():
            if key not in given[section]:
                values[section][f.name] = f.default
                continue
            value, where, from_env = given[section][key]
            parsed = _parse(f, value, where, from_env, problems)
            if parsed is not _BAD:
                values[section][f.name] = parsed

    _cross_check(values, problems)
    if problems:
        raise ConfigError(problems)
    return Config(**{s: cls(**values[s]) for s, cls in SECTIONS.items()})


def _show(meta: Mapping[str, Any], value: Any) -> str:
    """`, got <value>` for a message; nothing for a secret."""
    if meta.get("secret") or meta.get("kind") == "tokens":
        return ""
    if isinstance(value, str) and meta.get("show"):
        value = meta["show"](value)
    text = ascii(value)
    return ", got " + (text if len(text) <= _SHOW_MAX else text[: _SHOW_MAX - 3] + "...")


_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _coerce(kind: str, value: Any, from_env: bool) -> Any:
    """Turn a TOML value (or an environment string) into ``kind``, or _BAD."""
    if from_env and kind == "int":
        value = int(value) if re.fullmatch(r"\s*[+-]?[0-9]+\s*", value) else _BAD
    elif from_env and kind == "float":
        try:
            value = float(value)
        except ValueError:
            return _BAD
    elif from_env and kind == "bool":
        value = _BOOLS.get(value.strip().lower(), _BAD)
    elif from_env and kind in ("strs", "tokens"):
        text = value.strip()
        if text.startswith("[") or kind == "tokens":
            try:
                value = json.loads(text or "[]")
            except ValueError:
                return _BAD
        else:
            value = [item.strip() for item in text.split(",") if item.strip()]
    if kind == "str":
        return value if isinstance(value, str) else _BAD
    if kind == "int":
        return value if type(value) is int else _BAD
    if kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok and math.isfinite(value) else _BAD
    if kind == "bool":
        return value if isinstance(value, bool) else _BAD
    if kind == "strs":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return tuple(value) if ok else _BAD
    return value if isinstance(value, list) else _BAD  # tokens, checked later


def _parse(
    f: dataclasses.Field, value: Any, where: str, from_env: bool, problems: list[str]
) -> Any:
    meta = f.metadata
    typed = _coerce(meta["kind"], value, from_env)
    if typed is _BAD:
        problems.append(f"{where}: must be {meta['desc']}{_show(meta, value)}")
        return _BAD
    if meta["kind"] == "tokens":
        return _parse_tokens(typed, where, problems)
    if meta["ok"] and not meta["ok"](typed):
        problems.append(f"{where}: must be {meta['desc']}{_show(meta, typed)}")
        return _BAD
    if meta["item_ok"]:
        bad = [i for i, item in enumerate(typed) if not meta["item_ok"](item)]
        for i in bad:
            problems.append(f"{where}[{i}]: must be {meta['item_desc']}{_show(meta, typed[i])}")
        if bad:
            return _BAD
    return meta["norm"](typed) if meta["norm"] else typed


def _parse_tokens(tables: list[Any], where: str, problems: list[str]) -> Any:
    """The ``[[auth.token]]`` tables -> TokenConfig tuple, or _BAD."""
    before = len(problems)
    tokens = []
    for i, table in enumerate(tables):
        at = f"{where}[{i}]"
        if not isinstance(table, dict):
            problems.append(f"{at}: must be a table with sha256, agents, name")
            continue
        for key in sorted(set(table) - {"sha256", "agents", "name"}):
            problems.append(f"{at}.{key}: unknown key (known: agents, name, sha256)")
        sha, agents, name = table.get("sha256"), table.get("agents", []), table.get("name", "")
        if not (isinstance(sha, str) and _ok_sha256(sha)):
            problems.append(f"{at}.sha256: required, 64 hex characters (a SHA-256 hex digest)")
        if not (isinstance(agents, list) and all(isinstance(a, str) for a in agents)):
            problems.append(f"{at}.agents: must be a list of agents{_show({}, agents)}")
            agents = []
        for j, agent in enumerate(agents):
            if not rules.is_agent(agent):
                problems.append(
                    f"{at}.agents[{j}]: must be {rules.AGENT_FORMATS}{_show({}, agent)}"
                )
        if not (isinstance(name, str) and name.isprintable()):
            problems.append(f"{at}.name: must be printable text{_show({}, name)}")
        if len(problems) == before:
            tokens.append(TokenConfig(sha256=sha.lower(), agents=tuple(agents), name=name))
    return tuple(tokens) if len(problems) == before else _BAD


def _cross_check(values: dict[str, dict[str, Any]], problems: list[str]) -> None:
    """Rules between keys; a key that already failed is skipped."""
    clid = values["clid"]
    if clid.get("allowed"):
        if clid.get("default") and clid["default"] not in clid["allowed"]:
            problems.append(f"clid.default: {clid['default']} is not in clid.allowed")
        for number in clid.get("pool", ()):
            if number not in clid["allowed"]:
                problems.append(f"clid.pool: {number} is not in clid.allowed")

    listen = values["http"].get("listen")
    auth = values["auth"]
    no_tokens = not auth.get("tokens_sha256", ()) and not auth.get("tokens", ())
    if listen and "tokens_sha256" in auth and "tokens" in auth and no_tokens:
        host = split_listen(listen)[0]
        if not is_loopback(host):
            problems.append(
                f"auth.tokens_sha256: empty, refusing to listen on {host} without authentication"
            )

    agi_listen = values["agi"].get("listen")
    if listen and agi_listen and split_listen(listen) == split_listen(agi_listen):
        problems.append(f"agi.listen: same address as http.listen ({listen})")
