"""Run ``platforma-c2d serve`` / ``agi`` as a real process against the bench Asterisk.

``ServiceProcess`` writes a TOML config (bench ARI credentials, a fresh
SQLite journal, short ring timeouts unless overridden), starts the command
in its own process group and waits until ``/healthz`` says ARI is
connected. ``stop()`` sends SIGTERM (SIGKILL after 10 s); ``kill()`` is the
crash of a fault test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from testbed.asterisk import AGI_SECRET, ARI_PASSWORD, ARI_URL, ARI_USER

DEFAULTS = {
    "ari": {"url": ARI_URL, "username": ARI_USER, "password": ARI_PASSWORD, "app": "click2dial",
            "reconnect_max_backoff_s": 2.0},
    "http": {"listen": "127.0.0.1:18080", "threads": 8},
    "dial": {"agent_ring_timeout_s": 4, "callee_ring_timeout_s": 4, "tone_s": 1,
             "max_call_duration_s": 3600,
             # Who bridges REST calls ([dial] bridging, ADR 0018): ``C2D_BENCH_BRIDGING``
             # runs the suite with "dialplan"; a test's own overrides still win.
             "bridging": os.environ.get("C2D_BENCH_BRIDGING", "stasis")},
    "clid": {"default": "0115550000", "pool": ["0115550001", "0115550002"]},
    "limits": {"max_active_calls_per_agent": 1, "writes_per_minute": 0, "reads_per_minute": 0},
    "log": {"level": "DEBUG", "format": "json"},
    # The secret the bench's Asterisk holds in AstDB (c2d/agi_secret).
    "agi": {"listen": "127.0.0.1:4573", "secret": AGI_SECRET},
}


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(type(v))


#: The store the bench's services use: "sqlite" (a file in each service's
#: work directory) or "postgresql" (a database of the session's PostgreSQL
#: server per work directory, testbed/postgres.py); ``C2D_BENCH_STORE``.
BENCH_STORE = os.environ.get("C2D_BENCH_STORE", "sqlite")

#: How the bench's services send their ARI requests unless a test says otherwise:
#: "http" (the default) or "websocket" (``[ari] requests``); ``C2D_BENCH_ARI_REQUESTS``,
#: to run the suite in either mode.
BENCH_ARI_REQUESTS = os.environ.get("C2D_BENCH_ARI_REQUESTS", "http")


def render_config(overrides: dict | None = None, store_url: str = "") -> str:
    """TOML text of the bench config with ``overrides`` ({section: {key: value}}) merged in."""
    data = {k: dict(v) for k, v in DEFAULTS.items()}
    data["ari"]["requests"] = BENCH_ARI_REQUESTS
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    if store_url:
        data.setdefault("store", {})["url"] = store_url
    lines = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                continue
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    for section, values in data.items():
        for key, value in values.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                for table in value:
                    lines.append(f"[[{section}.{key}]]")
                    lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items())
                    lines.append("")
    return "\n".join(lines)


def stop_process_group(proc: subprocess.Popen | None) -> None:
    """SIGTERM to the process group of ``proc``, then SIGKILL after 10 s. Idempotent."""
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Call ``predicate`` until it returns something true or ``timeout`` seconds
    passed; returns whether it did (its last answer's truth)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceProcess:
    """``platforma-c2d <command> --config <tmp>/c2d.toml`` as a child process.

    ``workdir``: where the config, journal and log go; ``overrides``: config
    sections to change; ``command``: "serve" or "agi"; ``store_url``: the
    journal's URL when it is not the SQLite file in ``workdir`` (the suite
    on PostgreSQL, ``C2D_BENCH_STORE=postgresql``).
    """

    def __init__(self, workdir: Path, overrides: dict | None = None, command: str = "serve",
                 store_url: str | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.command = command
        overrides = {k: dict(v) for k, v in (overrides or {}).items()}
        if command == "serve":
            overrides.setdefault("http", {}).setdefault("listen", f"127.0.0.1:{free_port()}")
        self.db = self.workdir / "calls.sqlite3"
        #: the journal's URL: the SQLite file ``db``, or ``store_url`` (a PostgreSQL database)
        self.store_url = store_url or f"sqlite:///{self.db}"
        self.config_path = self.workdir / "c2d.toml"
        self.config_path.write_text(render_config(overrides, self.store_url))
        listen = overrides.get("http", {}).get("listen", DEFAULTS["http"]["listen"])
        self.url = f"http://{listen}"
        self.log_path = self.workdir / f"{command}.log"
        self.proc: subprocess.Popen | None = None
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def start(self, wait_connected: bool = True, timeout: float = 30) -> "ServiceProcess":
        """Start the process; for ``serve`` wait until /healthz reports ARI connected."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env = {k: v for k, v in env.items() if not k.startswith("PLATFORMA_C2D_")}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "platforma_c2d.cli", self.command, "--config", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)
        if self.command != "serve":
            time.sleep(1.0)
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited {self.proc.returncode}: {self.tail_log()}")
            try:
                r = self.http.get("/healthz")
                if r.status_code == 200 or (r.status_code == 503 and not wait_connected):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("service not healthy in time: " + self.tail_log())

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s. Idempotent."""
        stop_process_group(self.proc)

    def kill(self) -> None:
        """SIGKILL: the service dies without any clean-up (fault tests)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    @contextlib.contextmanager
    def journal_locked(self):
        """No write reaches the journal while the block runs (reads still
        answer); released after it. On SQLite ``BEGIN EXCLUSIVE`` on the
        file; on PostgreSQL every table of the store locked ``IN EXCLUSIVE
        MODE``, the same for the service: its writes wait."""
        if self.store_url.startswith("sqlite"):
            lock = sqlite3.connect(self.db, timeout=5)
            lock.execute("BEGIN EXCLUSIVE")
            try:
                yield
            finally:
                lock.rollback()
                lock.close()
            return
        import sqlalchemy as sa

        engine = sa.create_engine(self.store_url)
        try:
            with engine.connect() as conn:
                tables = conn.exec_driver_sql(
                    "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public'").scalars().all()
                conn.exec_driver_sql(f"LOCK TABLE {', '.join(tables)} IN EXCLUSIVE MODE")
                try:
                    yield
                finally:
                    conn.rollback()
        finally:
            engine.dispose()

    def lose_journal(self) -> None:
        """The journal is gone, as after a lost disk: the SQLite file (and its
        WAL) removed, or every table of the PostgreSQL database dropped. The
        service must be stopped or killed first; its next start begins on an
        empty store."""
        assert self.proc is None or self.proc.poll() is not None, "the service still runs"
        if self.store_url.startswith("sqlite"):
            for suffix in ("", "-wal", "-shm"):
                self.db.with_name(self.db.name + suffix).unlink(missing_ok=True)
            return
        import sqlalchemy as sa

        engine = sa.create_engine(self.store_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("DROP SCHEMA public CASCADE")
                conn.exec_driver_sql("CREATE SCHEMA public")
        finally:
            engine.dispose()

    def tail_log(self, lines: int = 60) -> str:
        """The last lines of the service's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # --- API helpers -------------------------------------------------------
    def post_call(self, body: dict, **kw) -> httpx.Response:
        """``POST /click2dial/calls`` with ``body`` as JSON."""
        return self.http.post("/click2dial/calls", json=body, **kw)

    def get_call(self, call_id: str) -> dict:
        """``GET /click2dial/calls/{id}`` (asserts 200)."""
        r = self.http.get(f"/click2dial/calls/{call_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def get_call_with(self, call_id: str, headers: dict) -> dict:
        """``GET /click2dial/calls/{id}`` with extra headers (asserts 200)."""
        r = self.http.get(f"/click2dial/calls/{call_id}", headers=headers)
        assert r.status_code == 200, r.text
        return r.json()

    def wait_state(self, call_id: str, state: str, timeout: float = 20) -> dict:
        """Poll a call until it reaches ``state`` (or ``ended``); return it."""
        deadline = time.monotonic() + timeout
        while True:
            call = self.get_call(call_id)
            if call["state"] == state or call["state"] == "ended" or time.monotonic() > deadline:
                return call
            time.sleep(0.1)
