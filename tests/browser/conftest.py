"""Fixtures shared by the real-browser tests (tests/browser).

* every module here is skipped when Chromium, node or the npm packages are
  missing (a failure under CI=true, where the browser must run);
* on a host whose only interface is loopback, Asterisk gets an ICE host
  candidate for the module (see ``_ice_host_address``);
* ``browser``: a headless Chromium driven step by step from the test
  (:class:`tests.browser.remote.Browser`), in a browser context of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")


def _missing() -> list[str]:
    missing = []
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if shutil.which("node") is None:
        missing.append("node (apt-get install nodejs npm)")
    for pkg in ("sip.js", "sip.js-legacy", "playwright-core"):
        if not (HERE / "node_modules" / pkg / "package.json").is_file():
            missing.append(f"tests/browser/node_modules/{pkg} (npm ci in tests/browser)")
    return missing


@pytest.fixture(scope="module", autouse=True)
def _browser_installed():
    missing = _missing()
    if missing:
        why = "browser test needs " + ", ".join(missing) + ": run scripts/install-browser.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(why + " (CI must run this test, not skip it)")
        pytest.skip(why)


MEDIA_IFACE, MEDIA_ADDR = "c2dmedia0", "198.18.21.1/32"


def _global_ipv4() -> list[str]:
    res = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True)
    return [line for line in res.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module", autouse=True)
def _ice_host_address(_browser_installed):
    """Give Asterisk an ICE host candidate on a loopback-only host.

    Asterisk takes its ICE host candidates from the machine's interfaces and
    pjproject leaves loopback out, so in a network namespace with only ``lo``
    (how developers run the bench side by side) its SDP answer has no
    candidate and ICE never starts. There, and only there, a veth pair with
    a benchmarking address (198.18.0.0/15) on one end is added for the
    module and removed after it (the kernel here has no ``dummy`` driver).
    A host with a real interface is left alone.
    """
    if shutil.which("ip") is None or _global_ipv4():
        yield
        return
    subprocess.run(["ip", "link", "add", MEDIA_IFACE, "type", "veth", "peer", "name", MEDIA_IFACE + "p"],
                   check=True)
    try:
        subprocess.run(["ip", "addr", "add", MEDIA_ADDR, "dev", MEDIA_IFACE], check=True)
        for dev in (MEDIA_IFACE, MEDIA_IFACE + "p"):
            subprocess.run(["ip", "link", "set", dev, "up"], check=True)
        yield
    finally:
        subprocess.run(["ip", "link", "del", MEDIA_IFACE], capture_output=True)


@pytest.fixture(scope="module")
def _chromium(_browser_installed, tmp_path_factory):
    """One Chromium for the module (starting one takes seconds); each test
    gets a fresh browser context of it from ``browser``."""
    from tests.browser.remote import Browser

    b = Browser(tmp_path_factory.mktemp("chromium"))
    yield b
    b.close()


@pytest.fixture
def browser(_chromium):
    """Factory: ``browser()`` → the module's :class:`tests.browser.remote.Browser`
    with a new, empty browser context (no cookies, no storage, one tab "main")."""

    def make():
        _chromium.reset()
        return _chromium

    yield make
