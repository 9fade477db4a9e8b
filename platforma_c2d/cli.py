"""``platforma-c2d``: serve / agi / check / call (SPEC §8).

Exit codes: 0 success; 1 the command ran and found problems (``check``) or
the call did not complete (``call``); 2 bad usage or bad configuration (one
line per problem on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

from platforma_c2d.config import Config, ConfigError, load_config
from platforma_c2d.rules import is_extension


def _load(path: str | None) -> Config:
    path = path or os.environ.get("PLATFORMA_C2D_CONFIG")
    if not path:
        print("note: no --config and no PLATFORMA_C2D_CONFIG: using the built-in defaults "
              "and PLATFORMA_C2D_* variables", file=sys.stderr)
    return load_config(path)


def cmd_serve(args) -> int:
    """Run the HTTP API and the Stasis app in one process until SIGTERM/SIGINT."""
    import waitress

    from platforma_c2d.http import create_app
    from platforma_c2d.logs import setup_logging
    from platforma_c2d.runtime import Runtime

    cfg = _load(args.config)
    setup_logging(cfg.log.level, cfg.log.format)
    runtime = Runtime(cfg)
    from platforma_c2d.http.limits import RateLimiter

    app = create_app(runtime.service, cfg, runtime.metrics,
                     RateLimiter(cfg.limits.requests_per_minute))
    from platforma_c2d.http.app import MAX_BODY_BYTES

    # waitress refuses a larger body before reading it (no 200 MB upload
    # before the 401/413).
    server = waitress.create_server(app, host=cfg.http.host, port=cfg.http.port,
                                    threads=cfg.http.threads, ident="platforma-c2d",
                                    max_request_body_size=MAX_BODY_BYTES)

    def _stop(signum, _frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    runtime.start()
    try:
        server.run()
    finally:
        server.close()
        runtime.stop()
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


def cmd_check(args) -> int:
    """Config valid, ARI reachable, trunk and agent endpoints exist, CLID pool valid."""
    import httpx

    cfg = _load(args.config)
    problems: list[str] = []
    ok: list[str] = ["config: valid"]
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
                tech, trunk_name = trunk_of(cfg.dial.trunk_endpoint)
                if not trunk_name:
                    ok.append(f"trunk: {cfg.dial.trunk_endpoint} names no trunk endpoint; not checked")
                else:
                    r = http.get(f"/endpoints/{tech}/{trunk_name}")
                    if r.status_code == 200:
                        ok.append(f"trunk: endpoint {tech}/{trunk_name} exists")
                    else:
                        problems.append(f"dial.trunk_endpoint: endpoint {tech}/{trunk_name} does not exist in Asterisk")
                for agent in args.agent or []:
                    if not is_extension(agent):
                        problems.append(f"agent {ascii(agent)[1:-1][:20]}: not an extension "
                                        "(3-4 digits, SPEC §1)")
                        continue
                    endpoint = cfg.dial.agent_endpoint.format(agent=agent)
                    etech, _, eres = endpoint.partition("/")
                    r = http.get(f"/endpoints/{etech}/{eres}")
                    if r.status_code == 200:
                        ok.append(f"agent: endpoint {endpoint} exists ({r.json().get('state')})")
                    else:
                        problems.append(f"agent {agent}: endpoint {endpoint} does not exist in Asterisk")
    except httpx.HTTPError as exc:
        problems.append(f"ari.url: cannot reach Asterisk at {a.url} ({type(exc).__name__})")
    if cfg.clid.pool:
        ok.append(f"clid: pool of {len(cfg.clid.pool)} valid numbers")
    else:
        ok.append("clid: pool empty, outbound_id 'random' will be refused")
    for line in ok:
        print("ok   " + line)
    for line in problems:
        print("FAIL " + line)
    return 1 if problems else 0


def cmd_call(args) -> int:
    """Place a call through the API and follow it to the end, one line per state."""
    import httpx

    cfg = _load(args.config)
    base = args.url or f"http://{cfg.http.listen}"
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    body = {"agent": args.agent, "callee": args.callee,
            "outbound_id": args.clid or cfg.clid.default}
    if args.ref is not None:
        body["call_ref"] = args.ref
    with httpx.Client(base_url=base, headers=headers, timeout=15) as http:
        try:
            resp = http.post("/click2dial/calls", json=body)
        except httpx.HTTPError as exc:
            print(f"error: cannot reach the service at {base} ({type(exc).__name__})", file=sys.stderr)
            return 1
        if resp.status_code != 201:
            print(f"error: {resp.status_code} {resp.text}", file=sys.stderr)
            return 1
        call = resp.json()
        last = None
        deadline = time.monotonic() + args.timeout
        while True:
            if call["state"] != last:
                last = call["state"]
                extra = f" reason={call['reason']}" if call.get("reason") else ""
                print(f"{time.strftime('%H:%M:%S')} {call['id']} {last}{extra}", flush=True)
            if last == "ended" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
            call = http.get(f"/click2dial/calls/{call['id']}").json()
        print(json.dumps(call, indent=2))
        return 0 if call.get("reason") == "completed" else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``platforma-c2d``."""
    p = argparse.ArgumentParser(prog="platforma-c2d", description="Click2Dial for the Asterisk PBX")
    sub = p.add_subparsers(dest="command", required=True)
    for name, fn, text in (("serve", cmd_serve, "HTTP API and Stasis app"),
                           ("agi", cmd_agi, "FastAGI server"),
                           ("check", cmd_check, "check config, ARI and endpoints")):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("--config", help="TOML config file (or PLATFORMA_C2D_CONFIG)")
        sp.set_defaults(func=fn)
        if name == "check":
            sp.add_argument("--agent", action="append", help="also check this agent's endpoint (repeatable)")
    sp = sub.add_parser("call", help="place a call through the API and follow it")
    sp.add_argument("agent")
    sp.add_argument("callee")
    sp.add_argument("--clid", help="outbound_id: a CLID number or 'random' (default: [clid].default)")
    sp.add_argument("--ref", help="call_ref")
    sp.add_argument("--config", help="TOML config file (for the API address)")
    sp.add_argument("--url", help="API base URL (default http://<[http].listen>)")
    sp.add_argument("--token", default=os.environ.get("PLATFORMA_C2D_TOKEN"),
                    help="bearer token (or PLATFORMA_C2D_TOKEN)")
    sp.add_argument("--timeout", type=float, default=600, help="seconds to follow the call")
    sp.set_defaults(func=cmd_call)
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
