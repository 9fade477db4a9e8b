"""``platforma-c2d``: serve / agi / check / call / events (SPEC §8, §10).

Exit codes: 0 success; 1 the command ran and found problems (``check``), the
call did not complete (``call``), or the service could not start (a store
or address it cannot use: one line on stderr); 2 bad usage or bad
configuration (one line per problem on stderr, never a traceback); 130
``call`` interrupted (the call is cancelled).
"""

from __future__ import annotations

import argparse
import logging
import json
import os
import signal
import sys
import time
import uuid

from platforma_c2d.calls.model import parse_iso
from platforma_c2d.cli_events import add_events_parser
from platforma_c2d.clid.pools import all_pools
from platforma_c2d.config import Config, ConfigError, load_config
from platforma_c2d.hardening import (ARI_SAMPLE_FAILURE, SAMPLE_ARI_PASSWORD,
                                     ari_on_browser_listeners, open_door_findings,
                                     sample_secret_findings)
from platforma_c2d.rules import is_extension


def _load(path: str | None, quiet: bool = False) -> Config:
    """The config of ``path`` (or ``PLATFORMA_C2D_CONFIG``); without either, the
    defaults and ``PLATFORMA_C2D_*`` variables, said on stderr unless ``quiet``."""
    path = path or os.environ.get("PLATFORMA_C2D_CONFIG")
    if not path and not quiet:
        print("note: no --config and no PLATFORMA_C2D_CONFIG: using the built-in defaults "
              "and PLATFORMA_C2D_* variables", file=sys.stderr)
    return load_config(path)


def cmd_serve(args) -> int:
    """Run the HTTP API and the Stasis app in one process until SIGTERM/SIGINT."""
    cfg = _load(args.config)
    if cfg.ari.password == SAMPLE_ARI_PASSWORD:
        print(f"config error: {ARI_SAMPLE_FAILURE}", file=sys.stderr)
        return 2
    return serve(cfg)


def cmd_sandbox(args) -> int:
    """Run the API against a simulated PBX (``platforma_c2d.sandbox``) until SIGTERM/SIGINT."""
    from platforma_c2d import sandbox

    return sandbox.run(args, serve)


def serve(cfg, command: str = "serve", sandbox: bool = False) -> int:
    """Serve the HTTP API and the Stasis app of ``cfg`` until SIGTERM/SIGINT; the exit code.

    ``command``: the name in the start and stop log lines; ``sandbox``: the
    answers say they come from the sandbox (``platforma_c2d.sandbox``)."""
    from platforma_c2d.config.checks import mask_url
    from platforma_c2d.http import create_app
    from platforma_c2d.http.server import build_http_server
    from platforma_c2d.logs import log_started, log_stopped, setup_logging
    from platforma_c2d.runtime import Runtime

    from platforma_c2d.contract import MAX_BODY_BYTES
    from platforma_c2d.cluster.rates import rate_limiter
    from platforma_c2d.store.journal import store_problem

    setup_logging(cfg.log.level, cfg.log.format)
    try:
        runtime = Runtime(cfg)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy, OS or driver error: one clear line
        print(f"error: store.url: cannot open the call journal ({store_problem(cfg.store.url, exc)})",
              file=sys.stderr)
        return 1
    app = create_app(runtime.service, cfg, runtime.metrics, rate_limiter(cfg, runtime.journal.engine),
                     sandbox=sandbox)
    # waitress refuses a larger body before reading it (no 200 MB upload
    # before the 401/413), and drops clients too slow to send a request.
    try:
        server = build_http_server(app, cfg.http, MAX_BODY_BYTES)
    except OSError as exc:
        print(f"error: http.listen: cannot listen on {cfg.http.listen} ({exc.strerror or exc})",
              file=sys.stderr)
        runtime.stop()
        return 1

    stopped_by: list[int] = []

    def _stop(signum, _frame):
        stopped_by.append(signum)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    runtime.start()
    if sandbox:
        from platforma_c2d.sandbox import BANNER

        logging.getLogger("platforma_c2d.sandbox").warning(BANNER, extra={"event": "sandbox"})
    log_started(command, listen=f"http://{cfg.http.listen}", app=cfg.ari.app, ari=cfg.ari.url,
                store=mask_url(cfg.store.url))
    try:
        server.run()
    finally:
        server.close()
        runtime.stop()
        log_stopped(command, stopped_by[0] if stopped_by else None)
    return 0


def cmd_agi(args) -> int:
    """Run the FastAGI server until SIGTERM/SIGINT."""
    from platforma_c2d.agi.server import serve_agi
    from platforma_c2d.logs import setup_logging

    cfg = _load(args.config)
    setup_logging(cfg.log.level, cfg.log.format)
    return serve_agi(cfg)


def trunk_of(dial_string: str) -> tuple[str, str]:
    """The (technology, endpoint name) a ``[dial] trunk_endpoint`` dials through.

    ``PJSIP/{number}@trunk`` → ("PJSIP", "trunk");
    ``PJSIP/trunk/sip:{number}@host:port`` → ("PJSIP", "trunk");
    the name is "" when the string names none (``PJSIP/{number}``).
    """
    tech, _, rest = dial_string.replace("{number}", "").partition("/")
    if "/" in rest:
        return tech, rest.split("/", 1)[0]
    return tech, (rest.split("@", 1)[1] if "@" in rest else rest)


def _check_modules(http, report: dict[str, list[str]], hep_listen: str = "") -> None:
    """Add the module and CDR backend lines of ``check`` to ``report`` (level → lines),
    and the HEP capture's when ``hep_listen`` ([trunk]) is set."""
    from platforma_c2d.config.modules_check import check_hep, check_modules

    resp = http.get("/asterisk/modules")
    if resp.status_code != 200:
        report["WARN"].append(f"modules: GET /asterisk/modules answered {resp.status_code}; not checked")
        return
    for level, line in check_modules(resp.json()) + check_hep(resp.json(), hep_listen):
        report[level].append(line)


def _check_media(http, trunk: str, report: dict[str, list[str]]) -> None:
    """Add the codec and media-timer lines of ``check`` to ``report`` (config/media_check.py)."""
    from platforma_c2d.config.media_check import check_media, settings

    names = [e.get("resource", "") for e in (http.get("/endpoints/PJSIP").json() or [])][:500]
    endpoints = {}
    for name in names:
        r = http.get(f"/asterisk/config/dynamic/res_pjsip/endpoint/{name}")
        if r.status_code == 200:
            endpoints[name] = settings(r.json())
    if trunk not in endpoints:
        return
    for level, line in check_media(trunk, endpoints, http.get("/asterisk/modules").json()):
        report[level].append(line)


def _check_schema(url: str, lines: dict[str, list[str]]) -> None:
    """Append what the store's schema revision means (``store/schema.py``) to ``lines[level]``."""
    from platforma_c2d.store import schema
    from platforma_c2d.store.journal import store_problem

    try:
        level, text = schema.check(url)
    except Exception as exc:  # noqa: BLE001 - any reason is reported, in one line
        level, text = "FAIL", f"store: schema unreadable ({store_problem(url, exc)})"
    lines[level].append(text)


def cmd_check(args) -> int:
    """Config valid, store usable, ARI reachable, trunk and agent endpoints exist, CLID pool
    valid, no sample secret in use, ARI not served where browsers connect (docs/security.md).

    Prints ``ok``, ``WARN`` (an agent's phone not registered now: not a
    configuration problem) and ``FAIL`` lines; returns 1 when any ``FAIL``.
    """
    import httpx

    from platforma_c2d.store.journal import probe_store

    cfg = _load(args.config)
    problems: list[str] = []
    warnings: list[str] = []
    ok: list[str] = ["config: valid"]
    store = probe_store(cfg.store.url)
    if store is None:
        ok.append("store: usable")
        _check_schema(cfg.store.url, {"ok": ok, "WARN": warnings, "FAIL": problems})
        from platforma_c2d.cluster.report import cluster_report
        for level, line in cluster_report(cfg.cluster, cfg.store.url):
            {"ok": ok, "WARN": warnings, "FAIL": problems}[level].append(line)
    else:
        problems.append(f"store.url: {store}")
    a = cfg.ari
    try:
        with httpx.Client(base_url=a.url + "/ari", auth=(a.username, a.password),
                          timeout=a.request_timeout_s) as http:
            resp = http.get("/asterisk/info")
            if resp.status_code == 401:
                problems.append("ari: Asterisk refused the username/password (401)")
            elif resp.status_code != 200:
                problems.append(f"ari: GET /asterisk/info answered {resp.status_code}")
            else:
                version = resp.json().get("system", {}).get("version", "?")
                ok.append(f"ari: reachable, Asterisk {version}")
                _check_modules(http, {"ok": ok, "WARN": warnings, "FAIL": problems}, cfg.trunk.hep_listen)
                from platforma_c2d.config.dialplan_check import check_dialplan
                for level, line in check_dialplan(http, cfg, args.agent or [],
                                                  getattr(args, "asterisk_rx", None)):
                    {"ok": ok, "WARN": warnings, "FAIL": problems}[level].append(line)
                tech, trunk_name = trunk_of(cfg.dial.trunk_endpoint)
                if not trunk_name:
                    ok.append(f"trunk: {cfg.dial.trunk_endpoint} names no trunk endpoint; not checked")
                else:
                    r = http.get(f"/endpoints/{tech}/{trunk_name}")
                    if r.status_code == 200:
                        ok.append(f"trunk: endpoint {tech}/{trunk_name} exists")
                        if tech.upper() == "PJSIP":
                            _check_media(http, trunk_name, {"ok": ok, "WARN": warnings, "FAIL": problems})
                        if r.json().get("state") == "offline":
                            warnings.append(f"trunk: endpoint {tech}/{trunk_name} is offline (Asterisk's "
                                            "qualify gets no answer from it): calls to customers fail "
                                            "until it answers")
                    else:
                        problems.append(f"dial.trunk_endpoint: endpoint {tech}/{trunk_name} does not exist in Asterisk")
                for agent in args.agent or []:
                    if not is_extension(agent):
                        problems.append(f"agent {ascii(agent)[1:-1][:20]}: not an extension "
                                        "(3-4 digits, SPEC §1)")
                        continue
                    endpoint = cfg.dial.agent_endpoint.format(agent=agent)
                    etech, ename = trunk_of(endpoint)
                    if etech.lower() == "local" or not ename:
                        ok.append(f"agent: {endpoint} names no endpoint (a Local channel runs the "
                                  "dialplan); not checked")
                        continue
                    r = http.get(f"/endpoints/{etech}/{ename}")
                    state = r.json().get("state") if r.status_code == 200 else None
                    if r.status_code != 200:
                        problems.append(f"agent {agent}: endpoint {etech}/{ename} does not exist in Asterisk")
                    elif state in ("online", "unknown"):
                        ok.append(f"agent: endpoint {etech}/{ename} exists ({state})")
                    else:
                        warnings.append(f"agent {agent}: endpoint {etech}/{ename} exists but is {state} "
                                        "(no registered contact): its calls end agent_unavailable until "
                                        "its phone registers")
    except httpx.HTTPError as exc:
        problems.append(f"ari.url: cannot reach Asterisk at {a.url} ({type(exc).__name__}); is its "
                        "HTTP server on? (enabled = yes in http.conf: off in a stock install)")
    pools = all_pools(cfg.clid)
    for pool in pools:
        ok.append(f"clid: pool {pool.name} of {len(pool.numbers)} numbers ({pool.policy})")
    if not pools:
        ok.append("clid: no pool, outbound_id 'random' will be refused")
    sample_failures, sample_warnings = sample_secret_findings(cfg)
    listener_failures, listener_oks = ari_on_browser_listeners(cfg)
    problems += sample_failures + listener_failures
    warnings += sample_warnings + open_door_findings(cfg)
    ok += listener_oks
    for line in ok:
        print("ok   " + line)
    for line in warnings:
        print("WARN " + line)
    for line in problems:
        print("FAIL " + line)
    return 1 if problems else 0


class _Interrupted(Exception):
    """SIGINT or SIGTERM while ``call`` follows its call."""


def _poll_interval_s(state: str, polls: int) -> float:
    """Seconds between two ``GET``s of a followed call: often while it is
    being set up, rarely once connected, so a long call stays far inside
    the default 60 requests a minute of a token. A state shorter than
    that is still shown: ``_show_states`` reads the call's history."""
    if state == "connected":
        return 5.0
    return 0.5 if polls < 10 else 2.0


def _retry_after_s(resp, cap_s: float) -> float:
    """Seconds a 429's ``Retry-After`` asks for (5 when absent or not a number), at most ``cap_s``."""
    retry = resp.headers.get("Retry-After", "5")
    return min(cap_s, float(retry) if retry.isdigit() else 5.0)


def _api_error(resp) -> str:
    """``<status> <error id>: <message>`` of an API answer (or its first 200 characters),
    then one indented line per bad field (``details.fields``) or other detail."""
    try:
        err = resp.json()
        text = f"{resp.status_code} {err['error']}: {err['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{resp.status_code} {resp.text[:200]!r}"
    details = err.get("details") if isinstance(err.get("details"), dict) else {}
    fields = details.get("fields") if isinstance(details.get("fields"), dict) else {}
    lines = [f"  {name}: {why}" for name, why in fields.items()]
    lines += [f"  {name}: {value}" for name, value in details.items() if name != "fields"]
    return "\n".join([text, *lines])


def bearer_token(on_command_line: str | None, token_file: str | None, environ) -> str | None:
    """The bearer token of ``call``: the first line of ``token_file``, else
    ``environ["PLATFORMA_C2D_TOKEN"]``, else ``None``. Raises ``ValueError``
    (a message for the user) for a token given on the command line (every
    local user could read it in the process list) or an unreadable or
    empty file."""
    if on_command_line is not None:
        raise ValueError("--token would show the token in the process list; put it in "
                         "PLATFORMA_C2D_TOKEN or in a file read with --token-file")
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as fh:
                token = fh.readline().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"--token-file: cannot read {token_file} "
                             f"({getattr(exc, 'strerror', None) or exc})") from None
        if not token:
            raise ValueError(f"--token-file: {token_file} holds no token on its first line")
        return token
    return environ.get("PLATFORMA_C2D_TOKEN") or None


def cmd_call(args) -> int:
    """Place a call through the API and follow it to the end, one line per state (SPEC §8).

    Polls ``GET /click2dial/calls/{id}`` every 0.5–5 s (see
    ``_poll_interval_s``), waits as long as a 429's ``Retry-After`` says,
    and rides out a restart of the service (connection errors, 5xx) until
    ``--timeout``. Ctrl-C (SIGINT, SIGTERM) or ``--timeout`` seconds:
    the call is cancelled (``DELETE``) and its final state is shown.
    Exit codes: 0 the call ended ``completed``; 1 it ended otherwise, the
    API refused it, or the service could not be reached; 130 interrupted.
    """
    import httpx

    try:
        token = bearer_token(args.token, args.token_file, os.environ)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg = _load(args.config, quiet=bool(args.url))
    base = args.url or f"http://{cfg.http.listen}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"agent": args.agent, "callee": args.callee,
            "outbound_id": args.clid or cfg.clid.default}
    if args.ref is not None:
        body["call_ref"] = args.ref

    def _on_signal(_signum, _frame):
        raise _Interrupted()

    # With a key, a call placed just as Ctrl-C came can still be found (a
    # replay of the same request returns it) and hung up.
    key = {"Idempotency-Key": "platforma-c2d-call-" + uuid.uuid4().hex}
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    call = None
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=15) as http:
            try:
                resp = http.post("/click2dial/calls", json=body, headers=key)
            except _Interrupted:
                return _cancel_unanswered(http, body, key)
            except httpx.HTTPError as exc:
                print(f"error: cannot reach the service at {base} ({type(exc).__name__})", file=sys.stderr)
                return 1
            if resp.status_code != 201:
                print(f"error: the call was not placed: {_api_error(resp)}", file=sys.stderr)
                return 1
            call = resp.json()
            try:
                call = _follow(http, call, args.timeout)
            except _Interrupted:
                print(f"interrupted: cancelling call {call['id']}", file=sys.stderr)
                call = _cancel(http, call)
                print(json.dumps(call, indent=2))
                return 130
            if call["state"] != "ended":
                print(f"still {call['state']} after {args.timeout:g} s: cancelling call {call['id']}",
                      file=sys.stderr)
                call = _cancel(http, call)
            print(json.dumps(call, indent=2))
            return 0 if call.get("reason") == "completed" else 1
    except _Interrupted:  # before the call was placed, or while cancelling
        print("interrupted" + (f": call {call['id']} may still be up" if call else ""), file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _cancel_unanswered(http, body: dict, key: dict) -> int:
    """Ctrl-C while the POST was in flight: find the call by replaying the
    request with its Idempotency-Key (nothing is dialled again) and hang it up."""
    import httpx

    print("interrupted while placing the call: looking it up to cancel it", file=sys.stderr)
    try:
        resp = http.post("/click2dial/calls", json=body, headers=key)
    except httpx.HTTPError:
        resp = None
    if resp is None or resp.status_code != 201:
        print("interrupted: no call was placed", file=sys.stderr)
        return 130
    call = _cancel(http, resp.json())
    print(json.dumps(call, indent=2))
    return 130


def _follow(http, call: dict, timeout_s: float) -> dict:
    """Print one line per state of ``call`` until it ends or ``timeout_s`` seconds pass; returns it."""
    import httpx

    last, polls, complained, shown = None, 0, False, []
    deadline = time.monotonic() + timeout_s
    while True:
        if call["state"] != last:
            last = call["state"]
            _show_states(http, call, shown)
        if last == "ended" or time.monotonic() > deadline:
            return call
        wait = _poll_interval_s(last, polls)
        polls += 1
        try:
            time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
            resp = http.get(f"/click2dial/calls/{call['id']}")
        except httpx.HTTPError as exc:
            resp, problem = None, f"the service does not answer ({type(exc).__name__})"
        else:
            problem = None if resp.status_code == 200 else _api_error(resp)
        if resp is not None and resp.status_code == 200:
            call = resp.json()
            continue
        if resp is not None and resp.status_code == 429:
            time.sleep(_retry_after_s(resp, 60.0))
        elif resp is not None and resp.status_code in (401, 403, 404):
            raise SystemExit(_gave_up(call, problem))
        if not complained:
            print(f"note: {problem.splitlines()[0]}; still following call {call['id']}", file=sys.stderr)
            complained = True


_ORDER = ("dialing_agent", "dialing_callee", "connected", "ended")
#: the call resource's own time of a state
_STATE_TIME = {"dialing_agent": "created_at", "connected": "answered_at", "ended": "ended_at"}


def _show_states(http, call: dict, shown: list[str]) -> None:
    """Print the state of ``call`` if new, and any state a poll skipped before it.

    ``shown``: the states printed so far (appended to). The states go in
    one order (dialing_agent → dialing_callee → connected → ended); when
    one before the polled state was not shown, it may have been shorter
    than the polling interval, and ``GET /click2dial/calls/{id}/history``
    tells whether it happened, and when. Without the history (an older
    service, an error) only the polled state is shown. Times are the
    call's own (``created_at``, ``answered_at``, ``ended_at``, or the
    journal's), in local time.
    """
    state = call["state"]
    if state in shown:
        return
    before = _ORDER[:_ORDER.index(state)] if state in _ORDER else ()
    if any(s not in shown for s in before):
        # Never out of order: only states after the last one shown.
        floor = max((_ORDER.index(x) for x in shown if x in _ORDER), default=-1)
        for entry in _history(http, call):
            if entry["state"] == state:
                break
            if entry["state"] in _ORDER[floor + 1:] and entry["state"] not in shown:
                _print_state(call, entry)
                shown.append(entry["state"])
    _print_state(call, {"state": state, "reason": call.get("reason"),
                        "at": call.get(_STATE_TIME.get(state, ""))})
    shown.append(state)


def _history(http, call: dict) -> list[dict]:
    """The call's states from ``GET .../history`` ([] when it cannot be read)."""
    import httpx

    try:
        resp = http.get(f"/click2dial/calls/{call['id']}/history")
        states = resp.json()["states"] if resp.status_code == 200 else []
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return []
    if not isinstance(states, list):
        return []
    return [e for e in states if isinstance(e, dict) and isinstance(e.get("state"), str)]


def _print_state(call: dict, entry: dict) -> None:
    """One line: local time (journalled, else now), call id, state, reason once ended."""
    try:
        at = parse_iso(entry.get("at")).astimezone().strftime("%H:%M:%S")
    except (TypeError, ValueError, AttributeError):
        at = time.strftime("%H:%M:%S")
    reason = entry.get("reason") or (call.get("reason") if entry["state"] == "ended" else None)
    extra = f" reason={reason}" if reason else ""
    print(f"{at} {call['id']} {entry['state']}{extra}", flush=True)


def _gave_up(call: dict, problem: str) -> int:
    print(f"error: cannot follow call {call['id']}: {problem}", file=sys.stderr)
    return 1


def _cancel(http, call: dict) -> dict:
    """``DELETE`` the call; returns its final resource (or the last one seen if that fails)."""
    import httpx

    for attempt in range(4):   # a 429 (the token's budget) is waited out, a few times
        try:
            resp = http.delete(f"/click2dial/calls/{call['id']}")
        except httpx.HTTPError as exc:
            print(f"error: cannot cancel call {call['id']} ({type(exc).__name__}); it may still be up",
                  file=sys.stderr)
            return call
        if resp.status_code != 429 or attempt == 3:
            break
        time.sleep(_retry_after_s(resp, 20.0))
    if resp.status_code != 200:
        print(f"error: cannot cancel call {call['id']}: {_api_error(resp)}; it may still be up",
              file=sys.stderr)
        return call
    return resp.json()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``platforma-c2d``."""
    from platforma_c2d import __version__

    p = argparse.ArgumentParser(prog="platforma-c2d", description="Click2Dial for the Asterisk PBX")
    p.add_argument("--version", action="version", version=f"platforma-c2d {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for name, fn, text in (("serve", cmd_serve, "HTTP API and Stasis app"),
                           ("agi", cmd_agi, "FastAGI server"),
                           ("check", cmd_check, "check config, ARI and endpoints")):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("--config", help="TOML config file (or PLATFORMA_C2D_CONFIG)")
        sp.set_defaults(func=fn)
        if name == "check":
            sp.add_argument("--agent", action="append", help="also check this agent's endpoint (repeatable)")
            sp.add_argument("--asterisk-rx", metavar="COMMAND",
                            help="how to run one Asterisk CLI command, to read the dialplan "
                                 "(default: 'asterisk -rx' when on the PATH)")
    sp = sub.add_parser("sandbox", help="the API against a simulated PBX, to try it (never a real call)")
    sp.add_argument("--listen", default="127.0.0.1:8080", help="API address, loopback only (default %(default)s)")
    sp.add_argument("--config", help="optional TOML with [dial], [clid], [limits], [auth]...; "
                                     "never [ari] or [store]")
    sp.add_argument("--state-dir", help="where the sandbox journal goes (default: a new temporary directory)")
    sp.set_defaults(func=cmd_sandbox)
    sp = sub.add_parser("call", help="place a call through the API and follow it")
    sp.add_argument("agent")
    sp.add_argument("callee")
    sp.add_argument("--clid", help="outbound_id: a CLID number or 'random' (default: [clid].default)")
    sp.add_argument("--ref", help="call_ref")
    sp.add_argument("--config", help="TOML config file (for the API address)")
    sp.add_argument("--url", help="API base URL (default http://<[http].listen>)")
    sp.add_argument("--token-file", help="file whose first line is the bearer token "
                                         "(default: the PLATFORMA_C2D_TOKEN variable)")
    # A token on the command line is in every user's process list: refused.
    sp.add_argument("--token", help=argparse.SUPPRESS)
    sp.add_argument("--timeout", type=float, default=14400,
                    help="seconds to follow the call; then it is cancelled (default 14400)")
    sp.set_defaults(func=cmd_call)
    add_events_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
