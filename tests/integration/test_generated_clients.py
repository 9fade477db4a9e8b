"""Clients generated from the OpenAPI document the service serves, by two
well-known generators, place, follow and cancel a call in the sandbox:

* openapi-python-client (PyPI; its own virtualenv ``.venv-openapi``);
* openapi-typescript (types) + openapi-fetch (requests), compiled by tsc
  with strict types (``tests/clients``).

Both are installed by scripts/install-browser.sh. docs/api.md says how.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from testbed.sandbox import SandboxProcess

REPO = Path(__file__).resolve().parents[2]
PY_GENERATOR = REPO / ".venv-openapi/bin/openapi-python-client"
CLIENTS = REPO / "tests/clients"


@pytest.fixture
def sandbox(workdir):
    box = SandboxProcess(workdir).start()
    (workdir / "openapi.json").write_bytes(box.http.get("/click2dial/openapi.json").content)
    yield box
    box.stop()


def _run(cmd, **kw) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, **kw)
    assert done.returncode == 0, f"{cmd[0]}: {done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


def _check(result: dict) -> None:
    assert result["seen"][0] == "dialing_agent" and result["seen"][-1] == "connected", result
    ended = result["ended"]
    assert (ended["state"], ended["reason"], ended["ended_by"]) == ("ended", "completed", "api"), ended
    assert result["listed"] == [ended["id"]]
    assert result["missing"] == "no-such-call"


def test_a_python_client_generated_by_openapi_python_client(sandbox, workdir):
    if not PY_GENERATOR.exists():
        pytest.fail("openapi-python-client is not installed: run scripts/install-browser.sh")
    _run([str(PY_GENERATOR), "generate", "--path", str(workdir / "openapi.json"),
          "--output-path", str(workdir / "c2d_client"), "--meta", "none"])
    out = _run([str(PY_GENERATOR.parent / "python"), str(CLIENTS / "follow_py.py"), sandbox.url, "sandbox",
                "gen-py"], cwd=workdir, env={"PYTHONPATH": str(workdir), "PATH": "/usr/bin:/bin"})
    result = json.loads(out.splitlines()[-1])
    _check(result)
    assert result["answered_at_type"] == "datetime"     # a nullable time, parsed as such


def test_a_typescript_client_generated_by_openapi_typescript_and_openapi_fetch(sandbox, workdir):
    if not (CLIENTS / "node_modules/.bin/openapi-typescript").exists():
        pytest.fail("openapi-typescript is not installed: run scripts/install-browser.sh")
    build = workdir / "ts"
    build.mkdir()
    for name in ("follow.ts", "tsconfig.json", "package.json"):
        shutil.copy(CLIENTS / name, build / name)
    (build / "node_modules").symlink_to(CLIENTS / "node_modules")
    bin_ = CLIENTS / "node_modules/.bin"
    _run([str(bin_ / "openapi-typescript"), str(workdir / "openapi.json"), "-o", str(build / "schema.d.ts")])
    _run([str(bin_ / "tsc"), "-p", str(build / "tsconfig.json")])
    out = _run(["node", str(build / "follow.js"), sandbox.url, "sandbox", "gen-ts"], cwd=build)
    _check(json.loads(out.splitlines()[-1]))
