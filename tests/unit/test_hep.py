"""The carrier's Retry-After read from Asterisk's HEPv3 capture (SPEC §3.8, C38)."""

from __future__ import annotations

import asyncio
import socket
import struct
import zlib

from platforma_c2d.calls.hep import RetryAfterLog, hep3_payload, listen, refusal
from platforma_c2d.calls.pacing import TrunkPacer

REFUSAL = (b"SIP/2.0 503 Service Unavailable\r\n"
           b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n"
           b"From: <sip:0215550199@127.0.0.1>;tag=a\r\n"
           b"To: <sip:0215550101@127.0.0.1:5070>;tag=b\r\n"
           b"Call-ID: c1\r\nCSeq: 102 INVITE\r\n"
           b"Retry-After: 6 (rate limit);duration=60\r\n"
           b"Content-Length: 0\r\n\r\n")


def _chunk(kind: int, body: bytes) -> bytes:
    return struct.pack("!HHH", 0, kind, 6 + len(body)) + body


def _hep3(*chunks: bytes) -> bytes:
    body = b"".join(chunks)
    return b"HEP3" + struct.pack("!H", 6 + len(body)) + body


def _captured(sip: bytes) -> bytes:
    """A packet as res_hep sends one: addresses, ports, times, then the payload."""
    return _hep3(_chunk(1, b"\x02"), _chunk(3, socket.inet_aton("127.0.0.1")), _chunk(7, b"\x13\xc6"),
                 _chunk(9, b"\0\0\0\1"), _chunk(0x11, b"c1"), _chunk(0x0F, sip))


def test_the_sip_message_is_taken_out_of_a_hep3_packet_plain_or_zipped():
    assert hep3_payload(_captured(REFUSAL)) == REFUSAL
    assert hep3_payload(_hep3(_chunk(0x10, zlib.compress(REFUSAL)))) == REFUSAL


def test_a_zipped_payload_that_inflates_past_any_sip_message_is_ignored():
    """32 MiB of zeros zip into 32 KiB, one datagram: it would have been inflated whole, on the event loop."""
    bomb = zlib.compress(b"\0" * (32 << 20), 9)
    assert len(bomb) < 40000
    assert hep3_payload(_hep3(_chunk(0x10, bomb))) is None
    longest = REFUSAL + b"x" * (65535 - len(REFUSAL))
    assert hep3_payload(_hep3(_chunk(0x10, zlib.compress(longest)))) == longest


def test_anything_not_a_whole_hep3_packet_is_ignored():
    packet = _captured(REFUSAL)
    for bad in (b"", b"HEP3", b"HEP2" + packet[4:], packet[:20], _hep3(_chunk(0x10, b"not zlib")),
                _hep3(struct.pack("!HHH", 0, 0x0F, 3)), _hep3(_chunk(3, b"\x7f\0\0\1"))):
        assert hep3_payload(bad) is None, bad


def test_a_503_to_an_invite_gives_the_number_refused_and_its_retry_after():
    assert refusal(REFUSAL) == ("0215550101", 6.0)
    compact = REFUSAL.replace(b"To: ", b"t: ").replace(b"Retry-After: 6 (rate limit);duration=60", b"Retry-After:7")
    assert refusal(compact) == ("0215550101", 7.0)
    assert refusal(REFUSAL.replace(b"Retry-After: 6 (rate limit);duration=60\r\n", b"")) == ("0215550101", None)
    assert refusal(REFUSAL.replace(b"Retry-After: 6", b"Retry-After: 99999")) == ("0215550101", 3600.0)


def test_other_messages_are_not_refusals():
    assert refusal(REFUSAL.replace(b"503 Service Unavailable", b"486 Busy Here")) is None
    assert refusal(REFUSAL.replace(b"CSeq: 102 INVITE", b"CSeq: 103 BYE")) is None
    assert refusal(b"INVITE sip:0215550101@127.0.0.1 SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n") is None
    assert refusal(REFUSAL.replace(b"To: <sip:0215550101@127.0.0.1:5070>", b"To: garbage")) is None


def test_a_refusal_is_taken_once_and_only_while_fresh():
    now = [100.0]
    log = RetryAfterLog(keep_s=30, clock=lambda: now[0])
    log.note("0215550101", 6.0)
    log.note("0215550102", 8.0)
    assert log.take("0215550101") == (True, 6.0)
    assert log.take("0215550101") == (False, None)
    now[0] += 31
    assert log.take("0215550102") == (False, None)


def test_the_pacer_holds_for_the_carriers_retry_after_else_for_the_configured_hold():
    now = [0.0]
    pacer = TrunkPacer(hold_after_503_s=30.0, clock=lambda: now[0])
    assert pacer.hold_after_503("0215550101") == (30.0, "[trunk] hold_after_503_s")
    assert pacer.held_until == 30.0
    pacer = TrunkPacer(hold_after_503_s=30.0, clock=lambda: now[0])
    pacer.use_capture(RetryAfterLog(clock=lambda: now[0]))
    pacer.refusals.note("0215550101", 6.0)
    pacer.refusals.note("0215550103", None)
    assert pacer.hold_after_503("0215550101") == (6.0, "the carrier's Retry-After")
    assert pacer.held_until == 6.0
    # A 503 without Retry-After, or a number the capture never saw: the configured hold.
    assert pacer.hold_after_503("0215550103") == (30.0, "[trunk] hold_after_503_s")
    assert pacer.hold_after_503("0215550104")[0] == 30.0


def test_the_listener_reads_refusals_from_udp_datagrams():
    async def run():
        log = RetryAfterLog()
        transport = await listen("127.0.0.1", 0, log)
        port = transport.get_extra_info("sockname")[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"junk", ("127.0.0.1", port))
            s.sendto(_captured(REFUSAL), ("127.0.0.1", port))
        for _ in range(100):
            if "0215550101" in log._seen:
                break
            await asyncio.sleep(0.01)
        transport.close()
        return log.take("0215550101")
    assert asyncio.run(run()) == (True, 6.0)


def test_a_capture_that_comes_after_the_hangup_report_sets_the_hold_from_the_refusal():
    # A busy Asterisk: the leg's hangup report reached the engine before the
    # capture of the 503. The fallback hold (30 s) applies at once, then the
    # carrier's own 6 s, counted from the refusal, replace it.
    now = [100.0]
    pacer = TrunkPacer(hold_after_503_s=30.0, clock=lambda: now[0])
    pacer.use_capture(RetryAfterLog(clock=lambda: now[0]))
    assert pacer.hold_after_503("0215550101") == (30.0, "[trunk] hold_after_503_s")
    assert pacer.held_until == 130.0
    now[0] += 0.5
    pacer.refusals.note("0215550101", 6.0)
    assert pacer.held_until == 106.0
    assert pacer.refusals.take("0215550101") == (False, None)     # used, not kept for a later leg
    # Longer than the fallback: longer it is.
    pacer.hold_after_503("0215550102")
    pacer.refusals.note("0215550102", 90.0)
    assert pacer.held_until == 100.5 + 90.0
    # A late capture without Retry-After keeps the fallback; one of a number
    # never refused, or too late, is kept for its own leg.
    pacer.hold_after_503("0215550103")
    held = pacer.held_until
    pacer.refusals.note("0215550103", None)
    assert pacer.held_until == held
    pacer.hold_after_503("0215550104")
    now[0] += 31
    pacer.refusals.note("0215550104", 5.0)
    pacer.refusals.note("0215550105", 5.0)
    assert pacer.refusals.take("0215550104") == (True, 5.0) and pacer.refusals.take("0215550105") == (True, 5.0)


def test_a_late_capture_never_shortens_a_hold_another_refusal_made_since():
    now = [0.0]
    pacer = TrunkPacer(hold_after_503_s=10.0, clock=lambda: now[0])
    pacer.use_capture(RetryAfterLog(clock=lambda: now[0]))
    pacer.hold_after_503("0215550101")              # held to 10 (fallback)
    now[0] = 1.0
    pacer.refusals.note("0215550102", 20.0)
    pacer.hold_after_503("0215550102")              # the carrier's 20 s: held to 21
    pacer.refusals.note("0215550101", 2.0)          # late, and shorter: 21 stays
    assert pacer.held_until == 21.0


def test_a_capture_from_an_address_other_than_asterisks_is_dropped():
    # HEP has no authentication: a forged refusal from elsewhere on the
    # network must not lengthen the trunk's hold.
    from platforma_c2d.calls.hep import _Capture
    log = RetryAfterLog()
    capture = _Capture(log, frozenset({"192.0.2.10"}))
    capture.datagram_received(_captured(REFUSAL), ("198.51.100.66", 9060))
    assert log.take("0215550101") == (False, None)
    assert capture.dropped == 1
    capture.datagram_received(_captured(REFUSAL), ("192.0.2.10", 9060))       # the Asterisk host
    assert log.take("0215550101") == (True, 6.0)
    capture.datagram_received(_captured(REFUSAL), ("::ffff:127.0.0.1", 9060))  # loopback, mapped
    assert log.take("0215550101") == (True, 6.0)


def test_the_asterisk_host_is_read_from_the_ari_url():
    from platforma_c2d.calls.hep import asterisk_addresses
    assert asterisk_addresses("http://192.0.2.10:8088/") == {"192.0.2.10"}
    assert asterisk_addresses("https://[2001:db8::1]:8089") == {"2001:db8::1"}
    assert asterisk_addresses("http://no-such-host.invalid:8088") == frozenset()
