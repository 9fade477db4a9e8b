"""``platforma-c2d sandbox`` as a process for tests: started on a free loopback
port with short ring timeouts, stopped with SIGTERM."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from testbed.service import free_port, stop_process_group

SANDBOX_CONFIG = """\
[dial]
agent_ring_timeout_s = 3
callee_ring_timeout_s = 3
tone_s = 1
"""


class SandboxProcess:
    """The sandbox in ``workdir``: ``url``, ``http`` (with the sandbox token), ``log_path``."""

    def __init__(self, workdir: Path, config_text: str = SANDBOX_CONFIG):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "sandbox.toml"
        self.config_path.write_text(config_text)
        self.listen = f"127.0.0.1:{free_port()}"
        self.url = f"http://{self.listen}"
        self.log_path = self.workdir / "sandbox.log"
        self.http = httpx.Client(base_url=self.url, timeout=30, headers={"Authorization": "Bearer sandbox"})
        self.proc: subprocess.Popen | None = None

    def command(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", "platforma_c2d.cli", "sandbox", "--listen", self.listen,
                "--config", str(self.config_path), "--state-dir", str(self.workdir / "state"), *extra]

    def start(self, timeout: float = 30) -> "SandboxProcess":
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORMA_C2D_")}
        self.proc = subprocess.Popen(self.command(), stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()
            try:
                if self.http.get("/healthz").status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("sandbox not ready: " + self.log_path.read_text())

    def wait_state(self, call_id: str, state: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            call = self.http.get(f"/click2dial/calls/{call_id}").json()
            if call["state"] in (state, "ended") or time.monotonic() > deadline:
                return call
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 10 s); idempotent."""
        stop_process_group(self.proc)
        self.http.close()
