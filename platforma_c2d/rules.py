"""The Click2Dial input rules (SPEC section 1), as pure functions.

No I/O and no third-party imports: the REST API, the Stasis app (SIP headers
of WebRTC calls) and the FastAGI server all check their input here, so that
one value is accepted or refused the same way whichever door it came in by.

The accepted formats, in words, are the ``*_FORMATS`` constants. Digits
are ASCII ``0-9`` only, and a value matches whole or not at all: a trailing
newline, spaces, a leading ``+``, a JSON number instead of a string or
non-ASCII digits are all refused. Every pattern below is therefore an
explicit ``[0-9]`` class applied with :func:`re.fullmatch` to a ``str``
(never ``\\d``, ``str.isdigit`` or ``$``, which all let something through).

Error messages name the accepted formats and never echo more than 40
characters of the refused value, escaped with :func:`ascii` (``repr`` that
also escapes every non-ASCII character), so that no input can forge a log
line or hide behind look-alike characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

#: Longest call_ref kept, in characters; longer (valid) values are cut to it.
CALL_REF_MAX = 230

#: The outbound_id that asks for a CLID drawn from the configured pool.
RANDOM = "random"

# The accepted formats in words (str), for error messages and documentation.
CALLEE_FORMATS = (
    "0 + 9 digits (10 long); 27 + 9 digits (11 long); "
    "00 + 11-14 digits (13-16 long)"
)
AGENT_FORMATS = f"a 3-4 digit extension, or a callee number ({CALLEE_FORMATS})"
OUTBOUND_ID_FORMATS = (
    "the word 'random' (lower case); 0 + 9 digits (10 long); "
    "27 + 9 digits (11 long)"
)
CALL_REF_FORMATS = (
    "letters A-Z a-z, digits 0-9 and . - _ ~ : only; "
    f"a longer value is cut to its first {CALL_REF_MAX} characters"
)

#: The messages of a refused field, as templates (``str.format``), so that
#: a client checking values before it sends them (the browser phone) can say
#: exactly what the API would: ``{value}`` is the refused value as
#: :func:`_show` writes it, ``{formats}`` one of the ``*_FORMATS`` above.
MSG_REQUIRED = "required; accepted: {formats}"
MSG_INVALID_VALUE = "invalid value {value}; accepted: {formats}"
MSG_INVALID_CHARACTER = "invalid character {char} at position {position} of {value}; accepted: {formats}"

#: The formats as regular expressions, applied with ``re.fullmatch`` (the
#: OpenAPI document anchors the same patterns, platforma_c2d.contract).
EXTENSION_RE = _EXTENSION = re.compile(r"[0-9]{3,4}")
CLID_NUMBER_RE = _CLID_NUMBER = re.compile(r"0[0-9]{9}|27[0-9]{9}")
CALLEE_NUMBER_RE = _CALLEE_NUMBER = re.compile(r"0[0-9]{9}|27[0-9]{9}|00[0-9]{11,14}")
_CALL_REF_BAD_CHAR = re.compile(r"[^A-Za-z0-9._~:-]")

#: Characters of a refused value echoed in a message; a longer value is
#: shown cut, as :data:`MSG_VALUE_CUT` says.
SHOW_MAX = 40
MSG_VALUE_CUT = "{shown}... ({length} characters)"

# status_callback is a known field, checked by the service against the
# configured URL prefixes (platforma_c2d.webhooks.callback), not here.
_BODY_FIELDS = ("agent", "callee", "outbound_id", "call_ref", "contact_ref", "status_callback")


class RuleError(ValueError):
    """One field refused by a rule of SPEC section 1.

    Attributes:
        field: the field's name (``str``), e.g. ``"outbound_id"``.
        message: what was wrong and the accepted formats (``str``); safe to
            log and to return to the client (the value is cut and escaped).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ValidationError(ValueError):
    """All invalid fields of one request at once (SPEC section 1).

    Attributes:
        errors: ``dict[str, str]``, field name -> message saying what was
            wrong and listing the accepted formats. Never empty. A request
            body that is not an object is reported under ``"body"``.
    """

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors: dict[str, str] = dict(errors)
        summary = "; ".join(f"{k}: {v}" for k, v in self.errors.items())
        super().__init__(f"invalid request: {summary}")


@dataclass(frozen=True)
class CallRequest:
    """A call request that passed every rule of SPEC section 1.

    Attributes:
        agent: the agent's extension or number (``str``).
        agent_is_external: ``True`` when ``agent`` is a number, so the
            agent's leg goes out through the trunk (SPEC sections 1 and 3).
        callee: the customer's number (``str``).
        outbound_id: as asked: ``"random"``, a CLID number, or ``""`` when
            not given (then the configured default applies, see
            :func:`choose_clid`).
        call_ref: the customer reference, ``""`` when none, already cut to
            :data:`CALL_REF_MAX` characters.
    """

    agent: str
    agent_is_external: bool
    callee: str
    outbound_id: str
    call_ref: str


# --------------------------------------------------------------------------
# Predicates: True when the value is a str matching the rule whole.
# --------------------------------------------------------------------------


def _matches(pattern: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def is_extension(value: object) -> bool:
    """Return whether ``value`` is an agent extension: a ``str`` of 3-4 ASCII
    digits (SPEC section 1, ``agent``). Never raises."""
    return _matches(_EXTENSION, value)


def is_callee_number(value: object) -> bool:
    """Return whether ``value`` is a callee number (SPEC section 1,
    ``callee``): a ``str`` that is ``0`` + 9 digits (10 characters),
    ``27`` + 9 digits (11 characters) or ``00`` + 11-14 digits (13-16
    characters), ASCII digits only. Never raises."""
    return _matches(_CALLEE_NUMBER, value)


def is_clid_number(value: object) -> bool:
    """Return whether ``value`` is a CLID number (SPEC section 1,
    ``outbound_id`` minus the word ``random``): a ``str`` that is ``0`` + 9
    digits (10 characters) or ``27`` + 9 digits (11 characters). Never
    raises."""
    return _matches(_CLID_NUMBER, value)


def is_outbound_id(value: object) -> bool:
    """Return whether ``value`` is a valid ``outbound_id`` (SPEC section 1):
    exactly ``"random"`` (lower case) or a CLID number (see
    :func:`is_clid_number`). Never raises."""
    return (isinstance(value, str) and value == RANDOM) or is_clid_number(value)


def is_agent(value: object) -> bool:
    """Return whether ``value`` is a valid ``agent`` (SPEC section 1): an
    extension (:func:`is_extension`) or a callee number
    (:func:`is_callee_number`). Never raises."""
    return is_extension(value) or is_callee_number(value)


# --------------------------------------------------------------------------
# Checkers: return the clean value or raise RuleError with a safe message.
# --------------------------------------------------------------------------


def _show(value: str) -> str:
    """The refused value for a message: at most 40 characters, escaped."""
    if len(value) <= SHOW_MAX:
        return ascii(value)
    return MSG_VALUE_CUT.format(shown=ascii(value[:SHOW_MAX]), length=len(value))


def _kind(value: object) -> str:
    """The JSON name of a non-string value's type, for a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _require_str(field: str, value: object, formats: str) -> str:
    if not isinstance(value, str):
        raise RuleError(
            field, f"must be a string, got {_kind(value)}; accepted: {formats}"
        )
    return value


def _refuse(field: str, value: str, formats: str) -> RuleError:
    return RuleError(field, MSG_INVALID_VALUE.format(value=_show(value), formats=formats))


def _check_agent(value: object) -> str:
    text = _require_str("agent", value, AGENT_FORMATS)
    if not is_agent(text):
        raise _refuse("agent", text, AGENT_FORMATS)
    return text


def _check_callee(value: object) -> str:
    text = _require_str("callee", value, CALLEE_FORMATS)
    if not is_callee_number(text):
        raise _refuse("callee", text, CALLEE_FORMATS)
    return text


def _check_outbound_id(value: object) -> str:
    text = _require_str("outbound_id", value, OUTBOUND_ID_FORMATS)
    if not is_outbound_id(text):
        raise _refuse("outbound_id", text, OUTBOUND_ID_FORMATS)
    return text


def _check_ref_chars(field: str, value: object) -> str:
    """Check a call_ref/contact_ref's characters over the whole value and
    return it uncut."""
    text = _require_str(field, value, CALL_REF_FORMATS)
    bad = _CALL_REF_BAD_CHAR.search(text)  # over the whole value, uncut
    if bad is not None:
        raise RuleError(field, MSG_INVALID_CHARACTER.format(
            char=ascii(bad.group()), position=bad.start() + 1, value=_show(text),
            formats=CALL_REF_FORMATS))
    return text


def clean_call_ref(value: object, *, field: str = "call_ref") -> str:
    """Check and cut a call_ref or contact_ref (SPEC section 1).

    Args:
        value: the reference; must be a ``str``. ``""`` is allowed and means
            no reference.
        field: the field name used in the error (``"call_ref"`` or
            ``"contact_ref"``).

    Returns:
        The value cut to its first :data:`CALL_REF_MAX` (230) characters.
        The characters are checked over the whole value first; length alone
        never rejects.

    Raises:
        RuleError: ``value`` is not a ``str`` or holds a character other than
            an ASCII letter, an ASCII digit or one of ``. - _ ~ :``.
    """
    return _check_ref_chars(field, value)[:CALL_REF_MAX]


def _field_name(key: object) -> str:
    """An unknown field's name, safe to use as an error key and to log."""
    if isinstance(key, str) and re.fullmatch(r"[\x21-\x7e]{1,40}", key):
        return key
    if isinstance(key, str):
        return _show(key)
    return ascii(key)[:SHOW_MAX]


#: A field not to check: a required one already reported as missing, or an
#: optional outbound_id not given (stored as "").
_SKIP = object()


def _collect(
    errors: dict[str, str], check: Callable[[object], str], value: object
) -> str:
    """Run one checker; on RuleError record it and return ``""``."""
    if value is _SKIP:
        return ""
    try:
        return check(value)
    except RuleError as exc:
        errors[exc.field] = exc.message
        return ""


def _build(
    errors: dict[str, str],
    agent: object,
    callee: object,
    outbound_id: object,
    refs: Mapping[str, object],
) -> CallRequest:
    """Check every field, merge call_ref/contact_ref, raise all errors.

    ``refs`` maps ``call_ref``/``contact_ref`` to their value, ``None`` when
    not given.
    """
    agent_text = _collect(errors, _check_agent, agent)
    callee_text = _collect(errors, _check_callee, callee)
    outbound_text = _collect(errors, _check_outbound_id, outbound_id)

    given: dict[str, str] = {}
    for field, value in refs.items():
        if value is None:
            continue
        try:
            given[field] = _check_ref_chars(field, value)
        except RuleError as exc:
            errors[exc.field] = exc.message
    # An empty value is no reference (SPEC section 1): it never conflicts.
    given = {k: v for k, v in given.items() if v != ""}
    if (
        "call_ref" in given
        and "contact_ref" in given
        and given["call_ref"] != given["contact_ref"]
    ):
        errors["contact_ref"] = (
            "differs from call_ref; contact_ref is the newer name of "
            "call_ref: give one of them, or the same value in both"
        )

    if errors:
        raise ValidationError(errors)
    ref = given.get("call_ref", given.get("contact_ref", ""))
    return CallRequest(
        agent=agent_text,
        agent_is_external=not is_extension(agent_text),
        callee=callee_text,
        outbound_id=outbound_text,
        call_ref=ref[:CALL_REF_MAX],
    )


def validate_call_request(
    body: object, *, require_outbound_id: bool = True
) -> CallRequest:
    """Validate a decoded JSON request body (SPEC sections 1 and 2).

    Args:
        body: the decoded JSON; must be a ``dict``.
        require_outbound_id: when ``False``, a missing (or ``null``)
            ``outbound_id`` is allowed and stored as ``""`` (the default
            CLID applies).

    Fields: ``agent``, ``callee`` and ``outbound_id`` are required JSON
    strings (``null``, a number, a boolean, an array... are refused).
    ``call_ref`` and ``contact_ref`` are optional; missing or ``null`` means
    not given. ``contact_ref`` is the newer name of ``call_ref``: given
    alone it becomes ``call_ref``; both given with different (whole,
    uncut) values is an error reported on ``contact_ref``. Any other field
    is an error ``"unknown field"`` reported under its own name.

    Returns:
        A :class:`CallRequest`.

    Raises:
        ValidationError: with every invalid field at once; ``{"body": ...}``
            when ``body`` is not a ``dict``.
    """
    if not isinstance(body, dict):
        raise ValidationError(
            {
                "body": f"must be a JSON object, got {_kind(body)}; fields: "
                + ", ".join(_BODY_FIELDS)
            }
        )
    errors: dict[str, str] = {}
    for key in body:
        if key not in _BODY_FIELDS:
            errors[_field_name(key)] = (
                "unknown field; accepted fields: " + ", ".join(_BODY_FIELDS)
            )

    def required(field: str, formats: str) -> object:
        if field not in body:
            errors[field] = MSG_REQUIRED.format(formats=formats)
            return _SKIP
        return body[field]

    agent = required("agent", AGENT_FORMATS)
    callee = required("callee", CALLEE_FORMATS)
    if require_outbound_id:
        outbound_id = required("outbound_id", OUTBOUND_ID_FORMATS)
    elif body.get("outbound_id") is None:
        outbound_id = _SKIP
    else:
        outbound_id = body["outbound_id"]
    refs = {f: body.get(f) for f in ("call_ref", "contact_ref")}
    return _build(errors, agent, callee, outbound_id, refs)


def validate_fields(
    *,
    agent: str,
    callee: str,
    outbound_id: str | None,
    call_ref: str | None,
) -> CallRequest:
    """Validate fields that did not come as JSON (SPEC sections 1, 4, 6).

    Used by the WebRTC path (SIP headers) and the FastAGI path.

    Args:
        agent: the agent's extension or number.
        callee: the callee's number.
        outbound_id: ``None`` when not given (stored as ``""``, the default
            CLID applies); otherwise ``"random"`` or a CLID number.
        call_ref: ``None`` when not given (stored as ``""``).

    Returns:
        A :class:`CallRequest` with ``call_ref`` cut to 230 characters.

    Raises:
        ValidationError: with every invalid field at once.
    """
    return _build(
        {},
        agent,
        callee,
        _SKIP if outbound_id is None else outbound_id,
        {"call_ref": call_ref},
    )


def journal_text(value: str, limit: int) -> str:
    """An input value as it may be journalled before (or without) passing the rules:
    ASCII-escaped, no control characters, at most ``limit`` characters (the journal
    shows what was asked, never raw). Used by every way in."""
    return ascii(value)[1:-1][:limit]
