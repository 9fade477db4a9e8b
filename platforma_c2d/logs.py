"""Structured logs (SPEC §9): one line per record, call id and call_ref on
every line about a call, and no way for input to forge a line.

``json`` format: one JSON object per line (control characters escaped by
the JSON encoder). ``text`` format: ``key=value`` pairs, every value passed
through ``ascii()``-style escaping so a newline in a call_ref or header can
never start a new log line.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

CONTEXT_KEYS = ("call_id", "call_ref", "origin", "event", "fields")


def _safe(text: str) -> str:
    return text.encode("unicode_escape").decode("ascii") if not (text.isprintable() and text.isascii()) else text


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line with the call context keys when present."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=True, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger [call_id=… call_ref=…] message`` with every part escaped."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        ctx = " ".join(f"{k}={_safe(str(getattr(record, k)))}" for k in CONTEXT_KEYS if hasattr(record, k))
        line = f"{ts}Z {record.levelname} {record.name} {'[' + ctx + '] ' if ctx else ''}{_safe(record.getMessage())}"
        if record.exc_info:
            line += " " + _safe(self.formatException(record.exc_info))
        return line


def setup_logging(level: str = "INFO", fmt: str = "json", stream=None) -> None:
    """Send every log record of the process to ``stream`` (stderr) in ``fmt``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "websockets", "waitress.queue"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
