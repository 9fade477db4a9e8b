"""``platforma-c2d check`` (SPEC §8): is this configuration ready to carry calls?

Reads the config, the store, and Asterisk through the service's own ARI
client (:class:`~platforma_c2d.ari.blocking.BlockingAri`: the requests the
service sends, one after the other); the judging lives beside the facts it
judges (``config/modules_check.py``, ``config/media_check.py``,
``config/dialplan_check.py``, ``hardening.py``, ``cluster/report.py``).
Prints ``ok``, ``WARN`` and ``FAIL`` lines.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

from platforma_c2d.ari.blocking import BlockingAri
from platforma_c2d.ari.client import AriClient, AriError, AriUnavailable
from platforma_c2d.clid.pools import all_pools
from platforma_c2d.config.checks import trunk_of
from platforma_c2d.hardening import (ari_on_browser_listeners, open_door_findings, sample_secret_findings,
                                     sip_door_findings)
from platforma_c2d.rules import is_extension

#: At most this many PJSIP endpoints are read for the media and dialplan lines.
MAX_ENDPOINTS = 500


def _check_schema(url: str, report: dict[str, list[str]]) -> None:
    """Append what the store's schema revision means (``store/schema.py``) to ``report[level]``."""
    from platforma_c2d.store import schema
    from platforma_c2d.store.journal import store_problem

    try:
        level, text = schema.check(url)
    except Exception as exc:  # noqa: BLE001 - any reason is reported, in one line
        level, text = "FAIL", f"store: schema unreadable ({store_problem(url, exc)})"
    report[level].append(text)


def _or_none(call, *args):
    """``call(*args)``, or None when Asterisk refused it (an ``AriError`` that is
    not ``AriUnavailable``: a missing endpoint reads like an absent one)."""
    try:
        return call(*args)
    except AriUnavailable:
        raise
    except AriError:
        return None


def _pjsip_settings(ari: BlockingAri) -> dict[str, dict[str, str]]:
    """Every PJSIP endpoint's settings (at most ``MAX_ENDPOINTS``), read once
    for the media and the dialplan lines: name → attribute → value."""
    from platforma_c2d.config.media_check import settings

    names = [e.get("resource", "") for e in (_or_none(ari.endpoints, "PJSIP") or [])][:MAX_ENDPOINTS]
    out = {}
    for name in names:
        conf = _or_none(ari.object_config, "res_pjsip", "endpoint", name)
        if conf is not None:
            out[name] = settings(conf)
    return out


def _check_endpoints(ari: BlockingAri, pjsip: Callable[[], dict[str, dict[str, str]]], cfg,
                     agents: list[str], report: dict[str, list[str]]) -> None:
    """The trunk's and the ``--agent`` endpoints' lines, and the media lines of the trunk's
    calls (``config/media_check.py``); ``pjsip()``: :func:`_pjsip_settings`."""
    from platforma_c2d.config.media_check import check_media

    tech, trunk_name = trunk_of(cfg.dial.trunk_endpoint)
    if not trunk_name:
        report["ok"].append(f"trunk: {cfg.dial.trunk_endpoint} names no trunk endpoint; not checked")
    else:
        trunk = _or_none(ari.endpoint, tech, trunk_name)
        if trunk is not None:
            report["ok"].append(f"trunk: endpoint {tech}/{trunk_name} exists")
            modules = _or_none(ari.modules)
            if tech.upper() == "PJSIP" and modules is not None:
                endpoints = pjsip()
                if trunk_name in endpoints:
                    for level, line in check_media(trunk_name, endpoints, modules):
                        report[level].append(line)
            if trunk.get("state") == "offline":
                report["WARN"].append(f"trunk: endpoint {tech}/{trunk_name} is offline (Asterisk's "
                                      "qualify gets no answer from it): calls to customers fail "
                                      "until it answers")
        else:
            report["FAIL"].append(f"dial.trunk_endpoint: endpoint {tech}/{trunk_name} does not exist in Asterisk")
    for agent in agents:
        if not is_extension(agent):
            report["FAIL"].append(f"agent {ascii(agent)[1:-1][:20]}: not an extension (3-4 digits, SPEC §1)")
            continue
        endpoint = cfg.dial.agent_endpoint.format(agent=agent)
        etech, ename = trunk_of(endpoint)
        if etech.lower() == "local" or not ename:
            report["ok"].append(f"agent: {endpoint} names no endpoint (a Local channel runs the "
                                "dialplan); not checked")
            continue
        found = _or_none(ari.endpoint, etech, ename)
        state = found.get("state") if found is not None else None
        if found is None:
            report["FAIL"].append(f"agent {agent}: endpoint {etech}/{ename} does not exist in Asterisk")
        elif state in ("online", "unknown"):
            report["ok"].append(f"agent: endpoint {etech}/{ename} exists ({state})")
        else:
            report["WARN"].append(f"agent {agent}: endpoint {etech}/{ename} exists but is {state} "
                                  "(no registered contact): its calls end agent_unavailable until "
                                  "its phone registers")


def _check_asterisk(ari: BlockingAri, cfg, args, report: dict[str, list[str]]) -> None:
    """The lines of what Asterisk says over ARI: reachable, modules, dialplan, endpoints.
    Raises ``AriUnavailable`` when Asterisk does not answer."""
    from platforma_c2d.config.dialplan_check import check_dialplan
    from platforma_c2d.config.modules_check import check_hep, check_modules

    try:
        info = ari.asterisk_info() or {}
    except AriUnavailable:
        raise
    except AriError as exc:
        report["FAIL"].append("ari: Asterisk refused the username/password (401)" if exc.status == 401
                              else f"ari: GET /asterisk/info answered {exc.status}")
        return
    version = info.get('system', {}).get('version', '?')
    report["ok"].append(f"ari: reachable, Asterisk {version}")
    if cfg.ari.requests == "websocket" and not rest_over_websocket(version):
        report["WARN"].append(f"ari: requests = \"websocket\" needs Asterisk 20.14, 21.9, 22.4 or later "
                              f"(REST over the event WebSocket); Asterisk {version} gets them over HTTP")
    try:
        modules = ari.modules()
    except AriUnavailable:
        raise
    except AriError as exc:
        report["WARN"].append(f"modules: GET /asterisk/modules answered {exc.status}; not checked")
    else:
        for level, line in check_modules(modules) + check_hep(modules, cfg.trunk.hep_listen):
            report[level].append(line)

    def global_var(name: str) -> str:
        return _or_none(ari.global_variable, name) or ""

    pjsip = functools.cache(lambda: _pjsip_settings(ari))   # read once, when first needed
    for level, line in check_dialplan(pjsip, global_var, cfg, args.agent or [],
                                      getattr(args, "asterisk_rx", None)):
        report[level].append(line)
    _check_endpoints(ari, pjsip, cfg, args.agent or [], report)
    failures, warnings = sip_door_findings(pjsip(), lambda name: _auth_settings(ari, name))
    report["FAIL"] += failures
    report["WARN"] += warnings


def rest_over_websocket(version: str) -> bool:
    """Whether an Asterisk of ``version`` (``22.10.1``, ``20.14.0-cert1``) answers REST requests on
    the event WebSocket: 20.14+, 21.9+, 22.4+ and every later major (their sources,
    res/ari/ari_websocket_requests.c). True too for a version that is not numbers (a
    development build, ``GIT-master-…``): it cannot be told, the service's probe will."""
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(itertools.takewhile(str.isdigit, part))
        if not digits:
            return True
        parts.append(int(digits))
    if len(parts) < 2:
        return True
    major, minor = parts
    return major > 22 or minor >= {20: 14, 21: 9, 22: 4}.get(major, 10**6)


def _auth_settings(ari: BlockingAri, name: str) -> dict[str, str] | None:
    """The settings of the PJSIP auth object ``name`` (ARI's dynamic config), or None."""
    from platforma_c2d.config.media_check import settings

    conf = _or_none(ari.object_config, "res_pjsip", "auth", name)
    return settings(conf) if conf is not None else None


def cmd_check(args) -> int:
    """Config valid, store usable, ARI reachable, trunk and agent endpoints exist, CLID pool
    valid, no sample secret in use, ARI not served where browsers connect (docs/security.md).

    Prints ``ok``, ``WARN`` (an agent's phone not registered now: not a
    configuration problem) and ``FAIL`` lines; returns 1 when any ``FAIL``.
    """
    from platforma_c2d.cli import _load
    from platforma_c2d.cluster.report import cluster_report
    from platforma_c2d.store.journal import probe_store

    cfg = _load(args.config)
    report: dict[str, list[str]] = {"ok": ["config: valid"], "WARN": [], "FAIL": []}
    store = probe_store(cfg.store.url)
    if store is None:
        report["ok"].append("store: usable")
        _check_schema(cfg.store.url, report)
        for level, line in cluster_report(cfg.cluster, cfg.store.url):
            report[level].append(line)
    else:
        report["FAIL"].append(f"store.url: {store}")
    a = cfg.ari
    try:
        with BlockingAri(AriClient(a.url, a.username, a.password, a.app, a.request_timeout_s)) as ari:
            _check_asterisk(ari, cfg, args, report)
    except AriUnavailable as exc:
        why = type(exc.__cause__).__name__ if exc.__cause__ is not None else exc.message
        report["FAIL"].append(f"ari.url: cannot reach Asterisk at {a.url} ({why}); is its "
                              "HTTP server on? (enabled = yes in http.conf: off in a stock install)")
    pools = all_pools(cfg.clid)
    for pool in pools:
        report["ok"].append(f"clid: pool {pool.name} of {len(pool.numbers)} numbers ({pool.policy})")
    if not pools:
        report["ok"].append("clid: no pool, outbound_id 'random' will be refused")
    sample_failures, sample_warnings = sample_secret_findings(cfg)
    listener_failures, listener_oks = ari_on_browser_listeners(cfg)
    report["FAIL"] += sample_failures + listener_failures
    report["WARN"] += sample_warnings + open_door_findings(cfg)
    report["ok"] += listener_oks
    for level, prefix in (("ok", "ok   "), ("WARN", "WARN "), ("FAIL", "FAIL ")):
        for line in report[level]:
            print(prefix + line)
    return 1 if report["FAIL"] else 0
