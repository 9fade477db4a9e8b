"""What a running service says about itself (docs/operations.md, "Logs"):
``--version``, one start-up line (version, listen address, app, ARI, store
URL without password) and one line when SIGTERM stops it, for ``serve`` and
``agi``, as journald would get them."""

from __future__ import annotations

import json
import subprocess
import sys

from platforma_c2d import __version__
from platforma_c2d.config import mask_url
from tests.integration.test_agi import start_agi


def log_messages(svc) -> list[str]:
    """The ``msg`` of every JSON log line the process wrote."""
    out = []
    for line in svc.log_path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line)["msg"])
        except (ValueError, KeyError):
            continue
    return out


def test_version_option_prints_the_version():
    res = subprocess.run([sys.executable, "-m", "platforma_c2d.cli", "--version"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and res.stdout.strip() == f"platforma-c2d {__version__}"


def test_serve_logs_a_start_up_line_and_a_stopped_line_on_sigterm(asterisk, service):
    started = [m for m in log_messages(service) if " serve started" in m]
    assert started == [f"platforma-c2d {__version__} serve started: listen={service.url} "
                       f"app=click2dial ari=http://127.0.0.1:8088 store={mask_url(service.store_url)}"]
    service.stop()
    assert service.proc.returncode == 0
    messages = log_messages(service)
    assert messages[-1] == f"platforma-c2d {__version__} serve stopped (SIGTERM)"
    assert not any("ARI event socket lost" in m for m in messages)


def test_agi_logs_a_start_up_line_and_a_stopped_line_on_sigterm(asterisk, make_service):
    svc, _journal = start_agi(make_service)
    assert f"platforma-c2d {__version__} agi started: listen=agi://127.0.0.1:4573 " \
           f"store={mask_url(svc.store_url)}" in log_messages(svc)
    svc.stop()
    assert log_messages(svc)[-1] == f"platforma-c2d {__version__} agi stopped (SIGTERM)"
