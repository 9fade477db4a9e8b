"""The per-address window of failed authentications (platforma_c2d.http.failed_auth)."""

from __future__ import annotations

import pytest

from platforma_c2d.calls.errors import RateLimited
from platforma_c2d.http.failed_auth import FailedAuthLimiter


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_an_address_is_refused_after_its_failures_until_the_oldest_is_a_minute_old():
    clock = Clock()
    limiter = FailedAuthLimiter(3, clock)
    for _ in range(3):
        limiter.check("192.0.2.7")
        limiter.failed("192.0.2.7")
        clock.now += 10
    with pytest.raises(RateLimited) as refused:
        limiter.check("192.0.2.7")
    assert refused.value.headers == {"Retry-After": "30"}
    assert refused.value.details == {"kind": "failed-authentication", "limit_per_minute": 3}
    limiter.check("192.0.2.8")              # another address is not affected
    clock.now += 30
    limiter.check("192.0.2.7")              # the oldest failure left the window


def test_zero_means_no_limit():
    limiter = FailedAuthLimiter(0)
    for _ in range(100):
        limiter.failed("192.0.2.7")
    limiter.check("192.0.2.7")
