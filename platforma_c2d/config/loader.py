"""Loading: a TOML file + the environment -> a validated :class:`Config`.

One TOML file, ``[section]`` tables of ``key = value``. An environment
variable ``PLATFORMA_C2D_<SECTION>_<KEY>`` (upper case) overrides the file.
Values from the environment are strings: integers and numbers are parsed,
booleans are ``true/false/1/0/yes/no``, lists are a JSON array or
comma-separated, and ``PLATFORMA_C2D_AUTH_TOKEN`` (the ``[[auth.token]]``
tables) is a JSON array of objects.
``PLATFORMA_C2D_CONFIG`` (the config path, for the CLI) is not a setting and
is ignored here.

Loading never stops at the first mistake: :class:`ConfigError` lists every
problem at once, one line each, naming the key (and the variable when the
value came from the environment). Secrets never appear in a message
(SPEC section 9).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import tomllib
from collections.abc import Mapping
from typing import Any

from platforma_c2d import rules
from platforma_c2d.config.checks import (SAMPLE_AGI_SECRET, _ok_http_url, _ok_printable, _ok_sha256,
                                          is_loopback, split_listen)
from platforma_c2d.config.pools import parse_pools, pool_problems
from platforma_c2d.config.cluster import cluster_problems
from platforma_c2d.config.schema import SECTIONS, Config, TokenConfig, WebhookEndpoint, _toml_key

ENV_PREFIX = "PLATFORMA_C2D_"
#: The longest ``[[auth.token]]`` name: the store keeps calls, events, Idempotency-Keys
#: and cluster-wide rates under it in a column of this width (PostgreSQL refuses more).
TOKEN_NAME_MAX = 64
#: Variables with the prefix that are not settings (read by the CLI).
ENV_IGNORED = frozenset({"PLATFORMA_C2D_CONFIG", "PLATFORMA_C2D_TOKEN"})

#: Keys of earlier versions -> what to write instead (CHANGELOG.md).
RENAMED = {
    "limits.requests_per_minute": " (replaced by writes_per_minute and reads_per_minute: "
                                  "POST/DELETE and GET are limited apart)",
}

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
                    hint = RENAMED.get(f"{name}.{key}") or _hint(key, list(keys))
                    problems.append(f"{name}.{key}: unknown key{hint}")

    by_env = {_env_name(s, k): (s, k) for s, cls in SECTIONS.items() for k in _keys(cls)}
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in ENV_IGNORED:
            continue
        if var not in by_env:
            # Compared without the prefix all of them share, which alone makes any
            # two names look alike (LIMITS_FOO would "mean" CLID_POOL).
            short = {name.removeprefix(ENV_PREFIX): name for name in by_env}
            close = difflib.get_close_matches(var.removeprefix(ENV_PREFIX), list(short), n=1)
            hint = (f" (did you mean {short[close[0]]}?)" if close else
                    f" (the variables are {ENV_PREFIX}<SECTION>_<KEY> of the config's keys)")
            problems.append(f"{var}: unknown environment variable{hint}")
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

    if "pools" in given["clid"] and "pool" not in given["clid"]:
        values["clid"]["pool"] = ()   # with [[clid.pools]], no default pool unless written
    _cross_check(values, problems)
    if problems:
        raise ConfigError(problems)
    return Config(**{s: cls(**values[s]) for s, cls in SECTIONS.items()})


def _show(meta: Mapping[str, Any], value: Any) -> str:
    """`, got <value>` for a message; nothing for a secret."""
    if meta.get("secret") or meta.get("kind") in ("tokens", "endpoints"):
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
        # ASCII digits only, as TOML writes them: no "1_0", no "١٠", no "nan".
        if not re.fullmatch(r"\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*", value):
            return _BAD
        value = float(value)
    elif from_env and kind == "bool":
        value = _BOOLS.get(value.strip().lower(), _BAD)
    elif from_env and kind in ("strs", "tokens", "endpoints", "pools"):
        text = value.strip()
        if text.startswith("[") or kind in ("tokens", "endpoints", "pools"):
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
    return value if isinstance(value, list) else _BAD  # tokens, pools: checked later


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
    if meta["kind"] == "endpoints":
        return _parse_endpoints(typed, where, problems)
    if meta["kind"] == "pools":
        pools = parse_pools(typed, where, problems)
        return _BAD if pools is None else pools
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
        if not (isinstance(name, str) and name.isprintable() and len(name) <= TOKEN_NAME_MAX):
            problems.append(f"{at}.name: must be printable text of at most {TOKEN_NAME_MAX} "
                            f"characters{_show({}, name)}")
        if len(problems) == before:
            tokens.append(TokenConfig(sha256=sha.lower(), agents=tuple(agents), name=name))
    return tuple(tokens) if len(problems) == before else _BAD


_ENDPOINT_LISTS = ("types", "agents", "tokens")


def _parse_endpoints(tables: list[Any], where: str, problems: list[str]) -> Any:
    """The ``[[webhooks.endpoints]]`` tables -> WebhookEndpoint tuple, or _BAD."""
    before = len(problems)
    endpoints, names = [], set()
    for i, table in enumerate(tables):
        at = f"{where}[{i}]"
        if not isinstance(table, dict):
            problems.append(f"{at}: must be a table with url, secret (and name, types, agents, tokens)")
            continue
        for key in sorted(set(table) - {"url", "secret", "name", *_ENDPOINT_LISTS}):
            problems.append(f"{at}.{key}: unknown key (known: agents, name, secret, tokens, types, url)")
        url, secret, name = table.get("url"), table.get("secret"), table.get("name", f"endpoint-{i + 1}")
        if not (isinstance(url, str) and _ok_http_url(url)):
            problems.append(f"{at}.url: required, an http(s)://host[:port]/path URL")
        if not (isinstance(secret, str) and _ok_printable(secret)):
            problems.append(f"{at}.secret: required, a non-empty string of printable characters")
        if not (isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name)):
            problems.append(f"{at}.name: must be 1-64 letters, digits, _ . -{_show({}, name)}")
        elif name in names or name == "status_callback":
            problems.append(f"{at}.name: {name!r} is taken (each endpoint needs a name of its own)")
        names.add(name)
        lists = {key: table.get(key, []) for key in _ENDPOINT_LISTS}
        for key, items in lists.items():
            if not (isinstance(items, list) and all(isinstance(v, str) and v.isprintable() for v in items)):
                problems.append(f"{at}.{key}: must be a list of strings{_show({}, items)}")
        if len(problems) == before:
            endpoints.append(WebhookEndpoint(url=url, secret=secret, name=name,
                                             **{k: tuple(v) for k, v in lists.items()}))
    return tuple(endpoints) if len(problems) == before else _BAD


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

    # Rate limits and Idempotency-Keys are kept per token name: two tokens
    # of one name would share them (and one could learn the other's keys).
    hashed, named = auth.get("tokens_sha256", ()), auth.get("tokens", ())
    if isinstance(hashed, tuple) and isinstance(named, tuple):
        seen: dict[str, str] = {f"token-{i + 1}": f"auth.tokens_sha256[{i}]" for i in range(len(hashed))}
        hashes: dict[str, str] = {}
        for i, digest in enumerate(hashed):
            if digest in hashes:
                problems.append(f"auth.tokens_sha256[{i}]: the same token as {hashes[digest]}")
            hashes.setdefault(digest, f"auth.tokens_sha256[{i}]")
        for i, tok in enumerate(named):
            name = tok.name or f"named-token-{i + 1}"
            if name in seen:
                problems.append(f"auth.token[{i}].name: {name!r} is also the name of {seen[name]} "
                                "(each token needs a name of its own)")
            seen.setdefault(name, f"auth.token[{i}]")
            if tok.sha256 in hashes:
                problems.append(f"auth.token[{i}].sha256: the same token as {hashes[tok.sha256]}")
            hashes.setdefault(tok.sha256, f"auth.token[{i}]")

    # A status_callback is signed with callback_secret; without one every
    # delivery would be given up, after the call was accepted with it.
    if values["webhooks"].get("allowed_url_prefixes") and not values["webhooks"].get("callback_secret"):
        problems.append("webhooks.callback_secret: required when allowed_url_prefixes is set "
                        "(status_callback deliveries are signed with it)")

    threads, streams = values["http"].get("threads"), values["webhooks"].get("max_streams")
    if threads and streams is not None and streams >= threads:
        problems.append(f"webhooks.max_streams: {streams} streams would hold every one of the "
                        f"{threads} [http] threads (raise http.threads above it)")

    if isinstance(hashed, tuple) and isinstance(named, tuple):
        names = [f"token-{i + 1}" for i in range(len(hashed))]
        names += [tok.name or f"named-token-{i + 1}" for i, tok in enumerate(named)]
        agents = {tok.name or f"named-token-{i + 1}": tok.agents for i, tok in enumerate(named)}
        pool_problems(clid, names, agents, problems)

    cluster_problems(values, problems)

    agi_listen = values["agi"].get("listen")
    # Like the API without tokens: a FastAGI server that other hosts reach must ask
    # them for the secret, or any of them journals calls and ends AGI calls.
    agi_secret = values["agi"].get("secret")
    if agi_listen and agi_secret in ("", SAMPLE_AGI_SECRET) and not is_loopback(split_listen(agi_listen)[0]):
        problems.append(f"agi.secret: {'empty' if not agi_secret else 'the public sample'}, refusing to "
                        f"serve FastAGI on {split_listen(agi_listen)[0]} without a secret of your own "
                        "(set [agi] secret and store it in Asterisk's database, docs/security.md, "
                        "or listen on loopback)")
    if listen and agi_listen and split_listen(listen) == split_listen(agi_listen):
        problems.append(f"agi.listen: same address as http.listen ({listen})")
