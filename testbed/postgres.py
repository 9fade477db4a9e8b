"""A throw-away PostgreSQL server for the tests (Debian's ``postgresql`` package).

``initdb`` into a temporary directory, then ``postgres`` listening on a Unix
socket in that directory only (no TCP port: nothing on the host's network,
no port to collide with another run). As root, the server runs as the
``postgres`` system user (``initdb`` refuses root). Every test gets a
database of its own (:meth:`PostgresServer.new_database`).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

#: The server's database superuser (trust authentication on the socket only).
SUPERUSER = "c2d"


def _bindir() -> Path:
    """The directory of ``initdb`` and ``postgres`` (the newest installed major version)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    if which:
        return Path(which).resolve().parent
    raise RuntimeError("PostgreSQL is not installed (bash scripts/setup.sh installs Debian's postgresql)")


class PostgresServer:
    """One PostgreSQL server in a temporary directory; :meth:`start`, then :meth:`stop` removes it all.

    ``url(db)`` is the SQLAlchemy URL of a database (psycopg 3 over the
    server's Unix socket). Raises ``RuntimeError`` when the server does not
    start within 30 s (its log in the message).
    """

    def __init__(self, base: Path | None = None):
        self.bindir = _bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="c2d-pg-", dir=base))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self._proc: subprocess.Popen | None = None
        self._names = itertools.count(1)
        self._by_key: dict[str, str] = {}
        self._user = None
        if os.geteuid() == 0:
            self._user = pwd.getpwnam("postgres")
            os.chown(self.dir, self._user.pw_uid, self._user.pw_gid)
        os.chmod(self.dir, 0o755)

    def _as_owner(self) -> dict:
        if self._user is None:
            return {}
        user = self._user
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [],
                "env": {"PATH": "/usr/bin:/bin", "HOME": str(self.dir), "LC_ALL": "C.UTF-8"}}

    def start(self) -> "PostgresServer":
        """initdb, then start the server and wait until it takes connections."""
        subprocess.run([str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                        "--auth=trust", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True, **self._as_owner())
        opts = ["-c", "listen_addresses=", "-c", f"unix_socket_directories={self.dir}",
                "-c", "fsync=off", "-c", "max_connections=200", "-c", "shared_buffers=32MB"]
        with open(self.log, "wb") as log:
            self._proc = subprocess.Popen([str(self.bindir / "postgres"), "-D", str(self.data), *opts],
                                          stdout=log, stderr=subprocess.STDOUT, **self._as_owner())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            ready = subprocess.run([str(self.bindir / "pg_isready"), "-h", str(self.dir), "-U", SUPERUSER],
                                   capture_output=True)
            if ready.returncode == 0:
                return self
            time.sleep(0.1)
        log_text = self.log.read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"PostgreSQL did not start:\n{log_text}")

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of ``database`` on this server (psycopg 3, Unix socket)."""
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.dir}"

    def new_database(self, prefix: str = "t") -> str:
        """Create an empty database; returns its URL."""
        import sqlalchemy as sa

        name = f"{prefix}{next(self._names)}"
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            engine.dispose()
        return self.url(name)

    def database_for(self, key: str) -> str:
        """The URL of the database of ``key`` (e.g. a service's work directory),
        created empty the first time ``key`` is asked for."""
        if key not in self._by_key:
            self._by_key[key] = self.new_database("svc")
        return self._by_key[key]

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory. Idempotent."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)   # fast shutdown: open connections are closed
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
