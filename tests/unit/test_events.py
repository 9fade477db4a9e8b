"""What the service says when the ARI event socket cannot be opened."""

from __future__ import annotations

import asyncio

from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from platforma_c2d.ari.events import unavailable_reason


def refused(status: int) -> InvalidStatus:
    return InvalidStatus(Response(status, "x", Headers()))


def test_wrong_credentials_are_named():
    why = unavailable_reason(refused(401))
    assert "username/password" in why and "401" in why


def test_other_statuses_are_given_by_number():
    assert "404" in unavailable_reason(refused(404))


def test_connection_refused_and_timeouts():
    assert unavailable_reason(ConnectionRefusedError(111, "Connection refused")) == "Connection refused"
    assert unavailable_reason(asyncio.TimeoutError()) == "no answer in time"
