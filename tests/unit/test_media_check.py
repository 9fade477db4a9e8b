"""``check``'s judgement of the endpoints' media settings (config/media_check.py; SPEC §3.9, C32, C33)."""

from __future__ import annotations

from platforma_c2d.config import DialConfig
from platforma_c2d.config.media_check import check_media, codecs, settings

RUNNING = [{"name": n, "status": "Running"} for n in
           ("codec_ulaw.so", "codec_alaw.so", "codec_opus_open_source.so")]
TRUNK = {"allow": "(ulaw|alaw)", "rtp_timeout": "0", "rtp_timeout_hold": "0"}
BROWSER = {"allow": "(opus|ulaw)", "rtp_timeout": "0", "rtp_timeout_hold": "0"}


def test_allow_lists_read_as_ari_shows_them():
    assert codecs("(opus|ulaw)") == ["opus", "ulaw"] and codecs("ulaw,alaw") == ["ulaw", "alaw"]
    assert settings([{"attribute": "allow", "value": "(ulaw)"}]) == {"allow": "(ulaw)"}


def test_opus_phones_with_a_g711_trunk_pass_when_opus_can_be_translated():
    out = check_media("trunk", {"trunk": TRUNK, "2101": BROWSER}, RUNNING)
    assert [level for level, _ in out] == ["ok"]


def test_no_opus_translator_fails_naming_the_endpoint_and_the_module():
    modules = [m for m in RUNNING if "opus" not in m["name"]]
    [(level, line)] = check_media("trunk", {"trunk": TRUNK, "2101": BROWSER}, modules)
    assert level == "FAIL" and "endpoint 2101 may use opus" in line and "codec_opus_open_source.so" in line


def test_a_translator_that_is_not_running_counts_as_missing():
    modules = RUNNING[:2] + [{"name": "codec_opus_open_source.so", "status": "Not Running"}]
    assert check_media("trunk", {"trunk": TRUNK, "2101": BROWSER}, modules)[0][0] == "FAIL"


def test_held_calls_cut_by_rtp_timeout_hold_fail_and_rtp_timeout_warns():
    phone = {"allow": "(ulaw)", "rtp_timeout": "60", "rtp_timeout_hold": "30"}
    levels = {(level, line.split(":")[0]) for level, line in check_media("trunk", {"trunk": TRUNK, "1001": phone},
                                                                          RUNNING)}
    assert ("FAIL", "media") in levels and ("WARN", "media") in levels


def test_a_customer_who_takes_a_minute_to_answer_is_not_cut_by_default():
    assert DialConfig().callee_ring_timeout_s > 60


def test_a_trunk_that_accepts_refer_warns_naming_its_context():
    trunk = dict(TRUNK, allow_transfer="true", context="from-trunk")
    [(level, line)] = [x for x in check_media("trunk", {"trunk": trunk}, RUNNING) if x[1].startswith("transfer")]
    assert level == "WARN" and "trunk endpoint trunk has allow_transfer=yes" in line and "from-trunk" in line
    refused = dict(TRUNK, allow_transfer="false", context="from-trunk")
    assert not [x for x in check_media("trunk", {"trunk": refused}, RUNNING) if x[1].startswith("transfer")]
