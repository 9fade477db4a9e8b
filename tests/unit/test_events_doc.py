"""The receiver examples of docs/events.md, run as written against real signed deliveries."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from platforma_c2d.calls.model import Call, Origin, Reason, new_call_id
from platforma_c2d.config import WebhookEndpoint, WebhooksConfig
from platforma_c2d.metrics import Metrics
from platforma_c2d.store.journal import Journal
from platforma_c2d.store.outbox import Outbox
from platforma_c2d.webhooks.delivery import WebhookDelivery
from platforma_c2d.webhooks.signature import sign
from testbed.service import free_port

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"
SECRET = "doc-example-secret"


def example(language: str) -> str:
    """The one ``language`` code block under a "Receiver, in …" heading."""
    blocks = re.findall(r"### Receiver, in [^\n]*\n\n```" + language + r"\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1, language
    return blocks[0]


@pytest.mark.parametrize("language, command", [("python", [sys.executable]), ("javascript", ["node"])])
def test_receiver_example_verifies_real_deliveries_and_refuses_a_forged_one(tmp_path, language, command):
    if shutil.which(command[0]) is None:
        pytest.skip(f"{command[0]} is not installed")
    script = tmp_path / ("receiver.py" if language == "python" else "receiver.js")
    script.write_text(example(language))
    port = free_port()
    proc = subprocess.Popen([*command, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={"PATH": "/usr/bin:/bin", "C2D_WEBHOOK_SECRET": SECRET, "PORT": str(port)})
    journal = Journal(f"sqlite:///{tmp_path}/c.sqlite3")
    url = f"http://127.0.0.1:{port}/hooks"
    worker = WebhookDelivery(Outbox(journal.engine),
                             WebhooksConfig(endpoints=(WebhookEndpoint(url=url, secret=SECRET, name="doc"),)),
                             Metrics(), poll_s=0.05)
    try:
        deadline = time.monotonic() + 20
        while True:   # the example is listening
            try:
                forged = httpx.post(url, content=b'{"id":1}', timeout=5,
                                    headers={"X-Platforma-Signature": sign("not the secret", b'{"id":1}')})
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.1)
        assert forged.status_code == 401
        stale = sign(SECRET, b'{"id":1}', t=int(time.time()) - 3600)
        assert httpx.post(url, content=b'{"id":1}', headers={"X-Platforma-Signature": stale}).status_code == 401
        # A non-ASCII byte in the header: refused like any forgery, the receiver answers.
        odd = f"t={int(time.time())},v1=".encode() + b"\xe9" * 64
        assert httpx.post(url, content=b'{"id":1}', headers={b"X-Platforma-Signature": odd}).status_code == 401
        worker.start()
        call = Call(id=new_call_id(), origin=Origin.REST, agent="1001", callee="0215550100",
                    outbound_id="", clid="0215550199", call_ref="doc")
        journal.record(call, "placed")
        call.end(Reason.AGENT_BUSY)
        journal.record(call, "busy")
        delivered = worker.metrics.webhook_delivered.labels("doc")
        deadline = time.monotonic() + 20
        while delivered._value.get() < 2:                  # the example answered 2xx to both
            assert time.monotonic() < deadline, "not delivered"
            time.sleep(0.1)
        assert Outbox(journal.engine).backlog() == (0, 0.0)
    finally:
        worker.stop()
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
        journal.close()
    lines = [line.split() for line in out.splitlines() if " call." in line and "POST" not in line]
    assert [(words[1], words[2], words[3]) for words in lines] == [
        ("call.dialing_agent", call.id, "None" if language == "python" else "null"),
        ("call.ended", call.id, "agent_busy")], out
