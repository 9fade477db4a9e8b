"""Structured logs (SPEC §9): one line per record, context kept, written by their own thread."""

from __future__ import annotations

import io
import json
import logging

import pytest

from platforma_c2d import logs


@pytest.fixture
def stream():
    out = io.StringIO()
    yield out
    logs._stop_listener()
    logging.getLogger().handlers[:] = []


def lines_of(stream) -> list[str]:
    logs._stop_listener()          # drains the queue, as at exit
    return stream.getvalue().splitlines()


def test_json_lines_keep_the_call_context_and_the_traceback(stream):
    logs.setup_logging("INFO", "json", stream)
    log = logging.getLogger("platforma_c2d.calls")
    log.info("ended: %s", "completed", extra={"call_id": "a" * 32, "call_ref": "CRM-1"})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("step failed", extra={"call_id": "b" * 32})
    first, second = (json.loads(line) for line in lines_of(stream))
    assert first["msg"] == "ended: completed" and first["call_id"] == "a" * 32
    assert first["call_ref"] == "CRM-1" and first["level"] == "INFO"
    assert second["call_id"] == "b" * 32 and "ValueError: boom" in second["exc"]


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_newline_in_input_never_starts_a_line(stream, fmt):
    logs.setup_logging("INFO", fmt, stream)
    forged = 'x\n{"level": "INFO", "msg": "forged"}'
    logging.getLogger("platforma_c2d.http").warning("refused %s", forged, extra={"call_ref": forged})
    lines = lines_of(stream)
    assert len(lines) == 1 and "forged" in lines[0]


def test_the_message_is_rendered_when_logged_not_when_written(stream):
    logs.setup_logging("INFO", "json", stream)
    state = {"v": "before"}

    class Late:
        def __str__(self):
            return state["v"]

    logging.getLogger("t").info("state %s", Late())
    state["v"] = "after"
    [line] = lines_of(stream)
    assert json.loads(line)["msg"] == "state before"
