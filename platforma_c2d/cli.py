"""``platforma-c2d``: serve / agi / check / call / events / agi-secret (SPEC §8, §10).

Exit codes: 0 success; 1 the command ran and found problems (``check``), the
call did not complete (``call``), or the service could not start (a store
or address it cannot use: one line on stderr); 2 bad usage or bad
configuration (one line per problem on stderr, never a traceback); 130
``call`` interrupted (the call is cancelled).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from platforma_c2d.cli_agi_secret import add_agi_secret_parser
from platforma_c2d.cli_call import cmd_call
from platforma_c2d.cli_check import cmd_check
from platforma_c2d.cli_events import add_events_parser
from platforma_c2d.config import Config, ConfigError, load_config
from platforma_c2d.hardening import ARI_SAMPLE_FAILURE, SAMPLE_ARI_PASSWORD


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
        server = build_http_server(app, cfg.http, MAX_BODY_BYTES,
                                   on_rejected=lambda error: runtime.metrics.rejected.labels(error).inc())
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
    add_agi_secret_parser(sub)
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
