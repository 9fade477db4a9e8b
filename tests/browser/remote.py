"""Drive a headless Chromium from a test, one step at a time (``remote.mjs``).

``Browser`` starts ``node remote.mjs`` and sends it one JSON request per
line; each answer comes back as one line. Any playwright ``Page`` method
that ``remote.mjs`` lists can be called with :meth:`Browser.do`; the
helpers below cover what the page tests use. A step that fails raises
``BrowserError`` carrying the page's console and CSP violations.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


class BrowserError(AssertionError):
    """A browser step failed (the message holds the page's console log)."""


class Browser:
    """One Chromium, one browser context at a time (its tabs share cookies),
    named tabs ("main" first).

    ``workdir``: where the driver's log goes.
    """

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._next = 0
        self.proc = subprocess.Popen(
            ["node", str(HERE / "remote.mjs"), "{}"],
            cwd=HERE, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(self.workdir / "node.log", "wb"),
            text=True, bufsize=1)
        self.version = self._read(0)

    def _read(self, want: int):
        line = self.proc.stdout.readline()
        if not line:
            raise BrowserError("the browser driver exited: " + (self.workdir / "node.log").read_text()[-2000:])
        answer = json.loads(line)
        assert answer["id"] == want, answer
        if not answer["ok"]:
            raise BrowserError(f"{answer['error']}\n--- page log ---\n" + "\n".join(self.log()))
        return answer["value"]

    def do(self, op: str, *args, page: str = "main"):
        """Run ``page.<op>(*args)`` in tab ``page``; return its JSON-able value."""
        self._next += 1
        self.proc.stdin.write(json.dumps({"id": self._next, "op": op, "args": list(args), "page": page}) + "\n")
        self.proc.stdin.flush()
        return self._read(self._next)

    def log(self) -> list[str]:
        """Console errors and warnings, page errors and CSP reports of every tab so far."""
        self._next += 1
        self.proc.stdin.write(json.dumps({"id": self._next, "op": "log"}) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline() or "{}")
        return answer.get("value") or []

    def ws_frames(self) -> list[dict]:
        """Every WebSocket frame the pages sent or received: ``{page, url, dir, text}``."""
        return self.do("wsFrames")

    def reset(self) -> None:
        """Close every tab and the browser context; start a new, empty one."""
        self.do("reset")

    def open(self, page: str) -> None:
        """Open a new tab called ``page`` (same cookies as the others)."""
        self.do("open", page=page)

    def wait_for(self, expression: str, timeout_s: float = 20, page: str = "main") -> None:
        """Wait until the JavaScript ``expression`` is truthy in ``page``."""
        self.do("waitUntil", expression, int(timeout_s * 1000), page=page)

    def wait_text(self, selector: str, text: str, timeout_s: float = 20, page: str = "main") -> str:
        """Wait until the element ``selector`` contains ``text``; return its whole text."""
        expr = (f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                f" return e && e.textContent.includes({json.dumps(text)}); }})()")
        try:
            self.wait_for(expr, timeout_s, page)
        except BrowserError as exc:
            now = self.do("textContent", selector, page=page) if self.do(
                "evaluate", f"!!document.querySelector({json.dumps(selector)})", page=page) else None
            raise BrowserError(f"{selector} never showed {text!r}; it shows {now!r}\n{exc}") from None
        return self.do("textContent", selector, page=page)

    def screenshot(self, path: Path, page: str = "main") -> Path:
        """A PNG of the whole page at ``path``."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.do("screenshot", {"path": str(path), "fullPage": True}, page=page)
        return Path(path)

    def close(self) -> None:
        """Close the browser. Idempotent."""
        if self.proc.poll() is None:
            try:
                self.do("close")
            except (BrowserError, OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
