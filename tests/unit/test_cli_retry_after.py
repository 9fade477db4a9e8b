"""``call`` reads a 429's ``Retry-After`` as RFC 9110 §10.2.3 says:
delta-seconds (ASCII digits) or an HTTP-date; anything else waits the
default, and nothing a server sends makes the command crash."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from platforma_c2d.cli_call import DEFAULT_RETRY_AFTER_S, _retry_after_s, parse_retry_after

NOW = datetime(2026, 12, 7, 18, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("value, seconds", [
    ("7", 7.0), ("0", 0.0), (" 12\t", 12.0), ("120", 60.0),          # capped at 60
    ("9" * 5000, 60.0),                                                # too long for int(): the cap
])
def test_delta_seconds_are_waited_up_to_the_cap(value, seconds):
    assert parse_retry_after(value, 60.0, NOW) == seconds


@pytest.mark.parametrize("value", ["²", "٣", "3²", "+5", "-1", "1.5", "1e3", "5 s", "", "soon", "5_0"])
def test_anything_but_ascii_digits_or_a_date_waits_the_default(value):
    assert parse_retry_after(value, 60.0, NOW) == DEFAULT_RETRY_AFTER_S


@pytest.mark.parametrize("value", ["Mon, 07 Dec 2026 18:00:30 GMT",     # IMF-fixdate
                                   "Monday, 07-Dec-26 18:00:30 GMT",    # obsolete RFC 850
                                   "Mon Dec  7 18:00:30 2026"])         # obsolete asctime
def test_an_http_date_is_waited_until(value):
    assert parse_retry_after(value, 60.0, NOW) == 30.0


def test_a_date_past_waits_nothing_and_a_far_one_the_cap():
    assert parse_retry_after("Mon, 07 Dec 2026 17:00:00 GMT", 60.0, NOW) == 0.0
    assert parse_retry_after("Tue, 08 Dec 2026 18:00:00 GMT", 60.0, NOW) == 60.0


def test_no_header_waits_the_default_within_the_cap():
    assert parse_retry_after(None, 60.0, NOW) == DEFAULT_RETRY_AFTER_S
    assert parse_retry_after(None, 2.0, NOW) == 2.0


@pytest.mark.parametrize("value", ["²", "٣", "9" * 5000, "Mon, 99 Foo 2026"])
def test_a_429_with_an_odd_retry_after_does_not_crash_the_command(value):
    # As it comes off the wire: the bytes a server sent, UTF-8 encoded.
    resp = httpx.Response(429, headers=[(b"Retry-After", value.encode("utf-8"))])
    assert 0.0 <= _retry_after_s(resp, 20.0) <= 20.0
