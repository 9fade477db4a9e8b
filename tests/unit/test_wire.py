"""testbed.wire: which packets count as an INVITE reaching the carrier."""

from __future__ import annotations

from testbed.wire import parse_invite

_INVITE = ("INVITE sip:0215550101@127.0.0.1:5070 SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1\r\n"
           "From: <sip:0215550199@127.0.0.1>;tag=abc\r\n"
           "To: <sip:0215550101@127.0.0.1>{to_tag}\r\n"
           "Call-ID: 7f3a-call\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")


def test_an_initial_invite_is_read_with_its_call_id_and_request_uri():
    assert parse_invite(_INVITE.format(to_tag="").encode()) == ("7f3a-call", "sip:0215550101@127.0.0.1:5070")


def test_a_reinvite_a_response_or_another_method_is_not_a_new_invite():
    assert parse_invite(_INVITE.format(to_tag=";tag=xyz").encode()) is None
    assert parse_invite(b"SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\n\r\n") is None
    assert parse_invite(_INVITE.format(to_tag="").replace("INVITE sip", "OPTIONS sip").encode()) is None
