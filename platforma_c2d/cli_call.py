"""``platforma-c2d call``: place a call through the API and follow it to the end (SPEC §8).

Exit codes as the other commands (``platforma_c2d.cli``): 0 the call
completed, 1 it did not, 2 bad usage or configuration, 130 interrupted
(the call is cancelled).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import uuid
from datetime import datetime, timezone

from werkzeug.http import parse_date

from platforma_c2d.calls.model import State, parse_iso


class _Interrupted(Exception):
    """SIGINT or SIGTERM while ``call`` follows its call."""


def _poll_interval_s(state: str, polls: int) -> float:
    """Seconds between two ``GET``s of a followed call: often while it is
    being set up, rarely once connected, so a long call stays far inside
    the default 60 requests a minute of a token. A state shorter than
    that is still shown: ``_show_states`` reads the call's history."""
    if state == "connected":
        return 5.0
    return 0.5 if polls < 10 else 2.0


#: Seconds to wait when a 429 or 503 has no ``Retry-After`` that can be read.
DEFAULT_RETRY_AFTER_S = 5.0
_DELTA_SECONDS = re.compile(r"[0-9]+")


def parse_retry_after(value: str | None, cap_s: float, now: datetime | None = None,
                      default_s: float = DEFAULT_RETRY_AFTER_S) -> float:
    """Seconds a ``Retry-After`` field value asks to wait, from 0 to ``cap_s``.

    RFC 9110 §10.2.3: either ``delta-seconds`` (ASCII digits only: no sign,
    no fraction, no other script's digits such as ``²`` or ``٣``) or an
    HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms; read
    with werkzeug's ``parse_date``), whose distance from ``now`` (aware
    UTC datetime; the clock when None) is the wait, 0 for a date past.
    Blanks around the value are ignored. ``default_s`` when ``value`` is
    None or neither form; never raises.
    """
    if value is None:
        return min(cap_s, default_s)
    value = value.strip(" \t")
    if _DELTA_SECONDS.fullmatch(value):
        # Thousands of digits: int() would refuse them (and any is over the cap).
        return min(cap_s, float(int(value))) if len(value) <= 12 else cap_s
    when = parse_date(value)
    if when is None:
        return min(cap_s, default_s)
    wait = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return min(cap_s, max(0.0, wait))


def _retry_after_s(resp, cap_s: float) -> float:
    """Seconds a 429's ``Retry-After`` asks for (:func:`parse_retry_after`), at most ``cap_s``."""
    return parse_retry_after(resp.headers.get("Retry-After"), cap_s)


def _api_error(resp) -> str:
    """``<status> <error id>: <message>`` of an API answer (or its first 200 characters),
    then one indented line per bad field (``details.fields``) or other detail."""
    try:
        err = resp.json()
        text = f"{resp.status_code} {err['error']}: {err['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{resp.status_code} {resp.text[:200]!r}"
    details = err.get("details") if isinstance(err.get("details"), dict) else {}
    fields = details.get("fields") if isinstance(details.get("fields"), dict) else {}
    lines = [f"  {name}: {why}" for name, why in fields.items()]
    lines += [f"  {name}: {value}" for name, value in details.items() if name != "fields"]
    return "\n".join([text, *lines])


def bearer_token(on_command_line: str | None, token_file: str | None, environ) -> str | None:
    """The bearer token of ``call``: the first line of ``token_file``, else
    ``environ["PLATFORMA_C2D_TOKEN"]``, else ``None``. Raises ``ValueError``
    (a message for the user) for a token given on the command line (every
    local user could read it in the process list) or an unreadable or
    empty file."""
    if on_command_line is not None:
        raise ValueError("--token would show the token in the process list; put it in "
                         "PLATFORMA_C2D_TOKEN or in a file read with --token-file")
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as fh:
                token = fh.readline().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"--token-file: cannot read {token_file} "
                             f"({getattr(exc, 'strerror', None) or exc})") from None
        if not token:
            raise ValueError(f"--token-file: {token_file} holds no token on its first line")
        return token
    return environ.get("PLATFORMA_C2D_TOKEN") or None


def cmd_call(args) -> int:
    """Place a call through the API and follow it to the end, one line per state (SPEC §8).

    Polls ``GET /click2dial/calls/{id}`` every 0.5–5 s (see
    ``_poll_interval_s``), waits as long as a 429's ``Retry-After`` says,
    and rides out a restart of the service (connection errors, 5xx) until
    ``--timeout``. Ctrl-C (SIGINT, SIGTERM) or ``--timeout`` seconds:
    the call is cancelled (``DELETE``) and its final state is shown.
    Exit codes: 0 the call ended ``completed``; 1 it ended otherwise, the
    API refused it, or the service could not be reached; 130 interrupted.
    """
    import httpx

    try:
        token = bearer_token(args.token, args.token_file, os.environ)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from platforma_c2d.cli import _load   # the commands' shared config loading; cli imports this module
    cfg = _load(args.config, quiet=bool(args.url))
    base = args.url or f"http://{cfg.http.listen}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"agent": args.agent, "callee": args.callee,
            "outbound_id": args.clid or cfg.clid.default}
    if args.ref is not None:
        body["call_ref"] = args.ref

    def _on_signal(_signum, _frame):
        raise _Interrupted()

    # With a key, a call placed just as Ctrl-C came can still be found (a
    # replay of the same request returns it) and hung up.
    key = {"Idempotency-Key": "platforma-c2d-call-" + uuid.uuid4().hex}
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    call = None
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=15) as http:
            try:
                resp = http.post("/click2dial/calls", json=body, headers=key)
            except _Interrupted:
                return _cancel_unanswered(http, body, key)
            except httpx.HTTPError as exc:
                print(f"error: cannot reach the service at {base} ({type(exc).__name__})", file=sys.stderr)
                return 1
            if resp.status_code != 201:
                hint = ("\n  no token was given: put it in PLATFORMA_C2D_TOKEN or in a file read with "
                        "--token-file" if resp.status_code == 401 and not token else "")
                print(f"error: the call was not placed: {_api_error(resp)}{hint}", file=sys.stderr)
                return 1
            call = resp.json()
            try:
                call = _follow(http, call, args.timeout)
            except _Interrupted:
                print(f"interrupted: cancelling call {call['id']}", file=sys.stderr)
                call = _cancel(http, call)
                print(json.dumps(call, indent=2))
                return 130
            if call["state"] != "ended":
                print(f"still {call['state']} after {args.timeout:g} s: cancelling call {call['id']}",
                      file=sys.stderr)
                call = _cancel(http, call)
            print(json.dumps(call, indent=2))
            return 0 if call.get("reason") == "completed" else 1
    except _Interrupted:  # before the call was placed, or while cancelling
        print("interrupted" + (f": call {call['id']} may still be up" if call else ""), file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _cancel_unanswered(http, body: dict, key: dict) -> int:
    """Ctrl-C while the POST was in flight: find the call by replaying the
    request with its Idempotency-Key (nothing is dialled again) and hang it up."""
    import httpx

    print("interrupted while placing the call: looking it up to cancel it", file=sys.stderr)
    try:
        resp = http.post("/click2dial/calls", json=body, headers=key)
    except httpx.HTTPError:
        resp = None
    if resp is None or resp.status_code != 201:
        print("interrupted: no call was placed", file=sys.stderr)
        return 130
    call = _cancel(http, resp.json())
    print(json.dumps(call, indent=2))
    return 130


def _follow(http, call: dict, timeout_s: float) -> dict:
    """Print one line per state of ``call`` until it ends or ``timeout_s`` seconds pass; returns it."""
    import httpx

    last, polls, complained, shown = None, 0, False, []
    deadline = time.monotonic() + timeout_s
    while True:
        if call["state"] != last:
            last = call["state"]
            _show_states(http, call, shown)
        if last == "ended" or time.monotonic() > deadline:
            return call
        wait = _poll_interval_s(last, polls)
        polls += 1
        try:
            time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
            resp = http.get(f"/click2dial/calls/{call['id']}")
        except httpx.HTTPError as exc:
            resp, problem = None, f"the service does not answer ({type(exc).__name__})"
        else:
            problem = None if resp.status_code == 200 else _api_error(resp)
        if resp is not None and resp.status_code == 200:
            call = resp.json()
            continue
        if resp is not None and resp.status_code == 429:
            time.sleep(_retry_after_s(resp, 60.0))
        elif resp is not None and resp.status_code in (401, 403, 404):
            raise SystemExit(_gave_up(call, problem))
        if not complained:
            print(f"note: {problem.splitlines()[0]}; still following call {call['id']}", file=sys.stderr)
            complained = True


_ORDER = tuple(s.value for s in State)
#: the call resource's own time of a state
_STATE_TIME = {State.DIALING_AGENT.value: "created_at", State.CONNECTED.value: "answered_at",
               State.ENDED.value: "ended_at"}


def _show_states(http, call: dict, shown: list[str]) -> None:
    """Print the state of ``call`` if new, and any state a poll skipped before it.

    ``shown``: the states printed so far (appended to). The states go in
    one order (dialing_agent → dialing_callee → connected → ended); when
    one before the polled state was not shown, it may have been shorter
    than the polling interval, and ``GET /click2dial/calls/{id}/history``
    tells whether it happened, and when. Without the history (an older
    service, an error) only the polled state is shown. Times are the
    call's own (``created_at``, ``answered_at``, ``ended_at``, or the
    journal's), in local time.
    """
    state = call["state"]
    if state in shown:
        return
    before = _ORDER[:_ORDER.index(state)] if state in _ORDER else ()
    if any(s not in shown for s in before):
        # Never out of order: only states after the last one shown.
        floor = max((_ORDER.index(x) for x in shown if x in _ORDER), default=-1)
        for entry in _history(http, call):
            if entry["state"] == state:
                break
            if entry["state"] in _ORDER[floor + 1:] and entry["state"] not in shown:
                _print_state(call, entry)
                shown.append(entry["state"])
    _print_state(call, {"state": state, "reason": call.get("reason"),
                        "at": call.get(_STATE_TIME.get(state, ""))})
    shown.append(state)


def _history(http, call: dict) -> list[dict]:
    """The call's states from ``GET .../history`` ([] when it cannot be read)."""
    import httpx

    try:
        resp = http.get(f"/click2dial/calls/{call['id']}/history")
        states = resp.json()["states"] if resp.status_code == 200 else []
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return []
    if not isinstance(states, list):
        return []
    return [e for e in states if isinstance(e, dict) and isinstance(e.get("state"), str)]


def _print_state(call: dict, entry: dict) -> None:
    """One line: local time (journalled, else now), call id, state, reason once ended."""
    try:
        at = parse_iso(entry.get("at")).astimezone().strftime("%H:%M:%S")
    except (TypeError, ValueError, AttributeError):
        at = time.strftime("%H:%M:%S")
    reason = entry.get("reason") or (call.get("reason") if entry["state"] == "ended" else None)
    extra = f" reason={reason}" if reason else ""
    print(f"{at} {call['id']} {entry['state']}{extra}", flush=True)


def _gave_up(call: dict, problem: str) -> int:
    print(f"error: cannot follow call {call['id']}: {problem}", file=sys.stderr)
    return 1


def _cancel(http, call: dict) -> dict:
    """``DELETE`` the call; returns its final resource (or the last one seen if that fails)."""
    import httpx

    for attempt in range(4):   # a 429 (the token's budget) is waited out, a few times
        try:
            resp = http.delete(f"/click2dial/calls/{call['id']}")
        except httpx.HTTPError as exc:
            print(f"error: cannot cancel call {call['id']} ({type(exc).__name__}); it may still be up",
                  file=sys.stderr)
            return call
        if resp.status_code != 429 or attempt == 3:
            break
        time.sleep(_retry_after_s(resp, 20.0))
    if resp.status_code != 200:
        print(f"error: cannot cancel call {call['id']}: {_api_error(resp)}; it may still be up",
              file=sys.stderr)
        return call
    return resp.json()
