"""Structured logs (SPEC §9): one line per record, call id and call_ref on
every line about a call, and no way for input to forge a line.

``json`` format: one JSON object per line (control characters escaped by
the JSON encoder). ``text`` format: ``key=value`` pairs, every value passed
through ``ascii()``-style escaping so a newline in a call_ref or header can
never start a new log line.

Records are formatted and written by a thread of their own
(``logging.handlers.QueueListener``): a thread that logs — the service's
event loop above all — only puts the record on a queue, and never waits for
a slow stderr (a pipe to journald, a full disk). The queue is drained when
the process exits.
"""

from __future__ import annotations

import atexit
import contextvars
import copy
import json
import logging
import logging.handlers
import queue
import sys
from datetime import datetime, timezone

CONTEXT_KEYS = ("request_id", "call_id", "call_ref", "origin", "event", "fields")

#: The id of the API request being served (``X-Request-Id``), set by the HTTP
#: layer; every log line written in its context carries it.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


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
        exc = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else None)
        if exc:
            out["exc"] = exc
        return json.dumps(out, ensure_ascii=True, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger [call_id=… call_ref=…] message`` with every part escaped."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        ctx = " ".join(f"{k}={_safe(str(getattr(record, k)))}" for k in CONTEXT_KEYS if hasattr(record, k))
        line = f"{ts}Z {record.levelname} {record.name} {'[' + ctx + '] ' if ctx else ''}{_safe(record.getMessage())}"
        exc = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else None)
        if exc:
            line += " " + _safe(exc)
        return line


class _Enqueue(logging.handlers.QueueHandler):
    """Puts a copy of the record on the queue with its message and traceback
    rendered now (the arguments may change after the call), its context
    attributes (``call_id``…) kept for the formatter on the other side."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)
        rid = request_id_var.get()     # read in the logging thread's context, before the queue
        if rid is not None and not hasattr(record, "request_id"):
            record.request_id = rid
        record.msg, record.args = record.getMessage(), None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record


_listener: logging.handlers.QueueListener | None = None


def drain() -> None:
    """Write every queued log line now and stop the writing thread (before ``os._exit``,
    which runs no exit handler); later records are dropped."""
    _stop_listener()


def _stop_listener() -> None:
    global _listener
    if _listener is not None:
        _listener.stop()          # writes what is queued
        _listener = None


def setup_logging(level: str = "INFO", fmt: str = "json", stream=None) -> None:
    """Send every log record of the process to ``stream`` (stderr) in ``fmt``
    (``"json"`` or ``"text"``), through the writing thread. Calling it again
    replaces the earlier set-up."""
    global _listener
    _stop_listener()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    records: queue.SimpleQueue = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(records, handler)
    _listener.start()
    root = logging.getLogger()
    root.handlers[:] = [_Enqueue(records)]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "websockets", "waitress.queue"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_started(what: str, **facts: str) -> None:
    """Log the start-up line of a command: version, then ``facts`` (``key=value``).

    ``what``: the command (``serve``, ``agi``). Facts are passed as they
    should appear: a URL with a password must be masked by the caller
    (``config.checks.mask_url``). The message starts with
    ``platforma-c2d <version> <what> started``, which operators grep for.
    """
    from platforma_c2d import __version__

    detail = " ".join(f"{key}={value}" for key, value in facts.items())
    logging.getLogger("platforma_c2d").info("platforma-c2d %s %s started: %s", __version__, what, detail)


def log_stopped(what: str, signum: int | None) -> None:
    """Log the last line of a command: ``platforma-c2d <version> <what> stopped (SIGTERM)``.

    ``signum``: the signal that stopped it, or ``None`` when it ended by itself.
    """
    import signal

    from platforma_c2d import __version__

    why = signal.Signals(signum).name if signum else "no signal"
    logging.getLogger("platforma_c2d").info("platforma-c2d %s %s stopped (%s)", __version__, what, why)


atexit.register(_stop_listener)
