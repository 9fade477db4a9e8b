"""``platforma-c2d sandbox``: the real service (API, engine, journal) against a
simulated PBX (:mod:`platforma_c2d.sandbox.pbx`), so that an integrator can
try the API with one command and no Asterisk.

It is marked everywhere: every answer carries ``X-Platforma-Sandbox: true``,
``/healthz`` says ``"sandbox": true``, and the log starts with a banner.
It never runs with a production configuration: it refuses a config file
with an ``[ari]`` or ``[store]`` section, any ``PLATFORMA_C2D_ARI_*`` or
``PLATFORMA_C2D_STORE_*`` variable, a listen address that is not
loopback and a webhook receiver that is not on loopback; its ARI URL is always its own simulated PBX and its journal a
directory of its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import sys
import tempfile
import threading
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from platforma_c2d.config import load_config
from platforma_c2d.config.checks import is_loopback, split_listen
from platforma_c2d.config.schema import AuthConfig, StoreConfig, TokenConfig
from platforma_c2d.sandbox.pbx import SimulatedPbx

#: The bearer token of the sandbox when its config names none (printed at start).
SANDBOX_TOKEN = "sandbox"
_FORBIDDEN_SECTIONS = ("ari", "store")
BANNER = ("SANDBOX: the PBX is simulated; no real call is placed. Never use this for production. "
          "Numbers: docs/api.md, 'Try it: the sandbox'.")


class SandboxRefused(Exception):
    """The sandbox will not run with what it was given (a production setting)."""


def refuse_production(config_path: str | None, listen: str, env: dict[str, str]) -> None:
    """Raise :class:`SandboxRefused` when anything points at a real PBX or store.

    ``config_path``: the optional TOML file; ``listen``: the API address;
    ``env``: the environment.
    """
    if config_path:
        try:
            data = tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SandboxRefused(f"{config_path}: cannot be read ({exc})") from None
        found = [s for s in _FORBIDDEN_SECTIONS if s in data]
        if found:
            raise SandboxRefused(
                f"{config_path} has [{'], ['.join(found)}]: that is a production config (a real Asterisk or "
                "the real call journal); the sandbox runs only with its own simulated PBX and journal")
    names = sorted(k for k in env if k.startswith(("PLATFORMA_C2D_ARI_", "PLATFORMA_C2D_STORE_")))
    if names:
        raise SandboxRefused(f"{', '.join(names)} set: the sandbox never talks to a real Asterisk or store")
    try:
        host = split_listen(listen)[0]
    except ValueError:
        raise SandboxRefused(f"--listen {listen!r}: not host:port") from None
    if not is_loopback(host):
        raise SandboxRefused(f"--listen {listen}: the sandbox listens on loopback only")


def refuse_real_receivers(webhooks) -> None:
    """Raise :class:`SandboxRefused` when a webhook would leave the machine.

    ``webhooks``: the loaded ``[webhooks]`` (file and ``PLATFORMA_C2D_WEBHOOKS_*``).
    A simulated call's events are signed with the configured secrets like
    real ones, so a production receiver (a CRM) could not tell them apart:
    every ``[[webhooks.endpoints]]`` URL and ``allowed_url_prefixes`` entry
    must name a loopback host (a receiver of the integrator's own).
    """
    urls = [(f"webhooks.endpoints {e.name}", e.url) for e in webhooks.endpoints]
    urls += [("webhooks.allowed_url_prefixes", prefix) for prefix in webhooks.allowed_url_prefixes]
    for where, url in urls:
        host = urlsplit(url).hostname or ""
        if not is_loopback(host):
            raise SandboxRefused(f"{where}: {host or url} is not loopback; the sandbox posts its simulated "
                                 "calls' events only to a receiver on this machine")


def start_pbx(app_name: str) -> tuple[str, threading.Thread]:
    """Start the simulated PBX on 127.0.0.1 (a free port) in a thread of its own;
    returns its base URL and the thread (a daemon: it ends with the process)."""
    ready: dict = {}
    started = threading.Event()

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(SimulatedPbx(app_name).app(), access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        ready["port"] = site._server.sockets[0].getsockname()[1]
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="sandbox-pbx", daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the simulated PBX did not start")
    return f"http://127.0.0.1:{ready['port']}", thread


def sandbox_config(args, env: dict[str, str], ari_url: str):
    """The service's config for the sandbox: the optional file's settings, with
    its own ARI (the simulated PBX), journal, listen address and a token."""
    cfg = load_config(args.config, {k: v for k, v in env.items()
                                    if k.startswith("PLATFORMA_C2D_") and k != "PLATFORMA_C2D_CONFIG"})
    state = Path(args.state_dir or tempfile.mkdtemp(prefix="platforma-c2d-sandbox-"))
    state.mkdir(parents=True, exist_ok=True)
    auth = cfg.auth
    if not auth.any_token:
        auth = AuthConfig(tokens=(TokenConfig(sha256=hashlib.sha256(SANDBOX_TOKEN.encode()).hexdigest(),
                                              name="sandbox"),))
    return dataclasses.replace(
        cfg, ari=dataclasses.replace(cfg.ari, url=ari_url, password="sandbox-pbx", reconnect_max_backoff_s=1.0),
        store=StoreConfig(url=f"sqlite:///{state / 'sandbox-calls.sqlite3'}"),
        http=dataclasses.replace(cfg.http, listen=args.listen), auth=auth,
        # The simulated PBX has no dialplan: its legs are dialled straight (not
        # through [c2d-trunk-leg] or [c2d-agent-leg]), and it is no PBX to warn about.
        dial=dataclasses.replace(cfg.dial, trunk_leg_context="", agent_leg_context=""))


def run(args, serve) -> int:
    """``platforma-c2d sandbox``: refuse production settings, start the simulated
    PBX, then ``serve(config, "sandbox", sandbox=True)``; returns the exit code."""
    env = dict(os.environ)
    try:
        refuse_production(args.config, args.listen, env)
    except SandboxRefused as exc:
        print(f"error: sandbox refused: {exc}", file=sys.stderr)
        return 2
    ari_url, _thread = start_pbx("click2dial")
    cfg = sandbox_config(args, env, ari_url)
    try:
        refuse_real_receivers(cfg.webhooks)
    except SandboxRefused as exc:
        print(f"error: sandbox refused: {exc}", file=sys.stderr)
        return 2
    token_note = (f"bearer token: {SANDBOX_TOKEN}" if cfg.auth.tokens and cfg.auth.tokens[0].name == "sandbox"
                  else "bearer tokens: those of the config file")
    print(f"{BANNER}\nAPI: http://{cfg.http.listen}/click2dial  ({token_note}); "
          f"OpenAPI: http://{cfg.http.listen}/click2dial/openapi.json", file=sys.stderr, flush=True)
    return serve(cfg, "sandbox", sandbox=True)


__all__ = ["run", "refuse_production", "refuse_real_receivers", "SandboxRefused", "SANDBOX_TOKEN", "BANNER"]
