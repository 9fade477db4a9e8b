"""Query parameters of ``GET /click2dial/calls``, read by their declaration in
:data:`platforma_c2d.contract.LIST_PARAMETERS` (SPEC §2): every unknown or bad
parameter is reported at once, by name, in one 400 ``invalid-request``.

The cursor is opaque to clients: URL-safe base64 of the ``created_at`` and
``id`` of the last call of a page. The next page holds the calls after it
in the list's order (newest first), so a call placed between two page
reads never repeats or shifts a call on a later page.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timezone

from platforma_c2d import contract, rules
from platforma_c2d.calls.errors import InvalidRequest
from platforma_c2d.calls.model import parse_iso
from platforma_c2d.calls.service import ListQuery

_TIME_HINT = "an ISO 8601 time with a zone, e.g. 2024-05-01T09:30:00Z"
_SHOW_MAX = 40


def encode_cursor(created_at: str, call_id: str) -> str:
    """The opaque cursor after the call (``created_at`` ISO 8601, ``call_id``)."""
    return base64.urlsafe_b64encode(f"{created_at}|{call_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """(created_at, id) of a cursor made by :func:`encode_cursor`; raises ``ValueError``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("not a cursor") from exc
    created_at, _, call_id = raw.partition("|")
    if not re.fullmatch(contract.CALL_ID_PATTERN.strip("^$"), call_id):
        raise ValueError("not a cursor")
    try:
        parse_iso(created_at)
    except ValueError as exc:
        raise ValueError("not a cursor") from exc
    return created_at, call_id


def _time(value: str) -> datetime:
    """The time in UTC; ``ValueError`` without a zone, or outside years 1-9999 in UTC."""
    parsed = datetime.fromisoformat(value)       # ValueError when it is not ISO 8601
    if parsed.tzinfo is None:
        raise ValueError("no zone")
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:                        # 0001-01-01T00:00+01:00 is in the year 0 in UTC
        raise ValueError("out of range") from None


def _one(param: contract.QueryParam, value: str):
    """The parsed value of one parameter; raises ``ValueError`` with what is accepted."""
    schema = param.schema
    if "$ref" in schema:
        enum = contract.ENUMS[schema["$ref"].rsplit("/", 1)[1]][0]
        allowed = [e.value for e in enum]
        if value not in allowed:
            raise ValueError("one of " + ", ".join(allowed))
        return value
    if schema.get("format") == "date-time":
        try:
            return _time(value)
        except ValueError:
            raise ValueError(_TIME_HINT) from None
    if schema["type"] == "integer":
        lo, hi = schema["minimum"], schema["maximum"]
        if not (value.isascii() and value.isdigit() and lo <= int(value) <= hi):
            raise ValueError(f"an integer from {lo} to {hi}")
        return int(value)
    if param.name == "cursor":
        try:
            return decode_cursor(value)
        except ValueError:
            raise ValueError("the next_cursor of an earlier page, unchanged") from None
    if param.name == "call_ref":
        # As in a POST body (SPEC section 1): the characters are checked over the whole
        # value, then it is cut; a CRM finds its call by the very reference it sent.
        if not re.fullmatch(schema["pattern"].strip("^$"), value):
            raise ValueError(rules.CALL_REF_FORMATS)
        return value[:rules.CALL_REF_MAX]
    if param.name == "agent" and not rules.is_agent(value):
        raise ValueError(rules.AGENT_FORMATS)
    if len(value) > schema.get("maxLength", len(value)) or not re.fullmatch(schema["pattern"].strip("^$"), value):
        raise ValueError(f"a value matching {schema['pattern']}")
    return value


def _show(value: str) -> str:
    return ascii(value[:_SHOW_MAX])[1:-1]


def parse_list_query(args) -> ListQuery:
    """A :class:`ListQuery` from the request's query arguments (a werkzeug ``MultiDict``).

    Raises ``InvalidRequest`` whose ``details.fields`` names every unknown
    parameter, every bad value (what is accepted) and every parameter given
    twice that may be given once.
    """
    problems: dict[str, str] = {}
    values: dict[str, object] = {}
    for name in args:
        param = contract.LIST_PARAMETERS.get(name)
        shown = _show(name)
        if param is None:
            problems[shown] = "unknown query parameter; known: " + ", ".join(contract.LIST_PARAMETERS)
            continue
        given = args.getlist(name)
        if len(given) > 1 and not param.repeat:
            problems[name] = "given more than once"
            continue
        parsed = []
        for value in given:
            try:
                parsed.append(_one(param, value))
            except ValueError as exc:
                problems[name] = f"invalid value '{_show(value)}'; accepted: {exc}"
        values[name] = tuple(parsed) if param.repeat else (parsed[0] if parsed else None)
    if problems:
        raise InvalidRequest("bad query parameters: " + ", ".join(problems), {"fields": problems})
    return ListQuery(states=values.get("state") or (), origins=values.get("origin") or (),
                     agent=values.get("agent"), call_ref=values.get("call_ref"),
                     created_after=values.get("created_after"), created_before=values.get("created_before"),
                     updated_after=values.get("updated_after"),
                     limit=values.get("limit") or contract.PAGE_DEFAULT, before=values.get("cursor"))


def next_cursor(page: list[dict], more: bool) -> str | None:
    """The cursor of the page after ``page``, or None when no call follows it."""
    return encode_cursor(page[-1]["created_at"], page[-1]["id"]) if more and page else None


__all__ = ["parse_list_query", "next_cursor", "encode_cursor", "decode_cursor"]
