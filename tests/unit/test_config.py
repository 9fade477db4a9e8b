"""The configuration contract (SPEC section 7, secrets per section 9):
TOML file + PLATFORMA_C2D_* environment -> a validated Config, or one
ConfigError listing every problem."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from platforma_c2d.config import (
    Config,
    ConfigError,
    TokenConfig,
    load_config,
    loads_config,
    split_listen,
)
from platforma_c2d.config.pools import ClidPoolConfig

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "platforma-c2d.sample.toml"
SECRET = "S3cr3t-pa55word"
HASH = "ab" * 32
HASH2 = "cd" * 32


def problems(text: str = "", env: dict[str, str] | None = None) -> list[str]:
    """The problems of a config that must fail."""
    with pytest.raises(ConfigError) as info:
        loads_config(text, env={} if env is None else env)
    return info.value.problems


def one_problem(text: str = "", env: dict[str, str] | None = None) -> str:
    found = problems(text, env)
    assert len(found) == 1, found
    return found[0]


# -- defaults and the sample file -------------------------------------------


def test_defaults_load_without_a_file():
    config = load_config(None, env={})
    assert config == Config()
    assert config == loads_config("", env={})


def test_defaults_are_those_of_spec_section_7():
    c = Config()
    assert (c.ari.url, c.ari.username, c.ari.password, c.ari.app) == (
        "http://127.0.0.1:8088", "c2d", "change-me", "click2dial")
    assert c.http.listen == "127.0.0.1:8080"
    assert c.dial.agent_endpoint == "PJSIP/{agent}"
    assert c.dial.trunk_endpoint == "PJSIP/{number}@trunk"
    assert (c.dial.agent_ring_timeout_s, c.dial.callee_ring_timeout_s) == (30, 90)
    assert c.dial.max_call_duration_s == 14400
    assert c.clid.default == "0115550000"
    assert c.clid.pool == ("0115550001", "0115550002")
    assert c.clid.allowed == ()
    assert c.auth.tokens_sha256 == () and c.auth.tokens == ()
    assert c.store.url == "sqlite:////var/lib/platforma-c2d/calls.sqlite3"
    assert c.agi.listen == "127.0.0.1:4573"
    assert (c.log.level, c.log.format) == ("INFO", "json")


def test_sample_file_loads_and_equals_the_defaults():
    assert load_config(SAMPLE, env={}) == Config()


def test_sample_file_documents_every_key():
    text = SAMPLE.read_text()
    for section, keys in Config().redacted().items():
        assert re.search(rf"^\[{section}\]$", text, re.M), section
        for key in keys:
            if key == "token":
                assert "[[auth.token]]" in text
            elif key == "pools":
                assert "[[clid.pools]]" in text
                for pool_key in ClidPoolConfig.__dataclass_fields__:
                    assert re.search(rf"^# {pool_key} = ", text, re.M), f"clid.pools.{pool_key}"
            else:
                assert re.search(rf"^{key} = ", text, re.M), f"{section}.{key}"


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().dial.tone_s = 1  # type: ignore[misc]


# -- listen addresses ----------------------------------------------------------


@pytest.mark.parametrize(
    "listen, host, port",
    [("127.0.0.1:8080", "127.0.0.1", 8080), ("[::1]:9000", "::1", 9000),
     ("localhost:1", "localhost", 1), ("127.0.0.1:65535", "127.0.0.1", 65535)],
)
def test_listen_exposes_host_and_port(listen, host, port):
    config = loads_config(f'[http]\nlisten = "{listen}"', env={})
    assert (config.http.host, config.http.port) == (host, port)
    assert split_listen(listen) == (host, port)


def test_agi_listen_exposes_host_and_port():
    config = loads_config('[agi]\nlisten = "[::1]:4574"', env={})
    assert (config.agi.host, config.agi.port) == ("::1", 4574)


@pytest.mark.parametrize(
    "listen",
    ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", ":8080", "::1:8080",
     "[::1]8080", "127.0.0.1: 8080", "127.0.0.1:８０８０", "[zz::1]:80", "a b:80"],
)
def test_listen_must_be_host_colon_port(listen):
    assert one_problem(f'[http]\nlisten = "{listen}"').startswith("http.listen: must be host:port")


def test_agi_and_http_must_not_listen_on_the_same_address():
    assert one_problem('[agi]\nlisten = "127.0.0.1:8080"').startswith("agi.listen: same address")


# -- environment overrides -----------------------------------------------------


def test_env_overrides_a_string():
    config = loads_config("", env={"PLATFORMA_C2D_ARI_PASSWORD": SECRET})
    assert config.ari.password == SECRET


def test_env_overrides_the_file():
    config = loads_config("[dial]\nagent_ring_timeout_s = 10",
                          env={"PLATFORMA_C2D_DIAL_AGENT_RING_TIMEOUT_S": "20"})
    assert config.dial.agent_ring_timeout_s == 20


def test_env_overrides_an_integer():
    config = loads_config("", env={"PLATFORMA_C2D_DIAL_MAX_CALL_DURATION_S": " 600 "})
    assert config.dial.max_call_duration_s == 600


def test_env_overrides_a_float():
    config = loads_config("", env={"PLATFORMA_C2D_ARI_REQUEST_TIMEOUT_S": "2.5"})
    assert config.ari.request_timeout_s == 2.5


@pytest.mark.parametrize("text", ["\u0661\u0660", "1_0", "nan", "inf", "1e", "", "10s", "0x10"])
def test_env_float_takes_ascii_digits_only(text):
    with pytest.raises(ConfigError) as err:
        loads_config("", env={"PLATFORMA_C2D_ARI_REQUEST_TIMEOUT_S": text})
    assert any("PLATFORMA_C2D_ARI_REQUEST_TIMEOUT_S" in p for p in err.value.problems)


@pytest.mark.parametrize("text,value", [(" 2 ", 2.0), ("0.5", 0.5), (".5", 0.5), ("1e1", 10.0)])
def test_env_float_forms(text, value):
    config = loads_config("", env={"PLATFORMA_C2D_ARI_REQUEST_TIMEOUT_S": text})
    assert config.ari.request_timeout_s == value


def test_toml_integer_is_accepted_for_a_float_key():
    config = loads_config("[agi]\nread_timeout_s = 3", env={})
    assert config.agi.read_timeout_s == 3.0 and isinstance(config.agi.read_timeout_s, float)


@pytest.mark.parametrize(
    "text, expected",
    [("true", True), ("TRUE", True), ("1", True), ("yes", True),
     ("false", False), ("0", False), ("No", False)],
)
def test_env_overrides_a_boolean(text, expected):
    config = loads_config("", env={"PLATFORMA_C2D_DIAL_CONFIRM_EXTERNAL_AGENT": text})
    assert config.dial.confirm_external_agent is expected


@pytest.mark.parametrize(
    "text, expected",
    [('["0115550003", "27115550004"]', ("0115550003", "27115550004")),
     ("0115550003, 27115550004", ("0115550003", "27115550004")),
     ("0115550003", ("0115550003",)),
     ("", ()), ("[]", ())],
)
def test_env_overrides_a_list_as_json_or_comma_separated(text, expected):
    config = loads_config("", env={"PLATFORMA_C2D_CLID_POOL": text})
    assert config.clid.pool == expected


def test_env_overrides_token_tables_as_json():
    value = json.dumps([{"sha256": HASH, "agents": ["1001"], "name": "crm"}])
    config = loads_config("", env={"PLATFORMA_C2D_AUTH_TOKEN": value})
    assert config.auth.tokens == (TokenConfig(sha256=HASH, agents=("1001",), name="crm"),)


@pytest.mark.parametrize(
    "var, value",
    [("PLATFORMA_C2D_DIAL_AGENT_RING_TIMEOUT_S", "abc"),
     ("PLATFORMA_C2D_DIAL_AGENT_RING_TIMEOUT_S", "1.5"),
     ("PLATFORMA_C2D_ARI_REQUEST_TIMEOUT_S", "nan"),
     ("PLATFORMA_C2D_DIAL_CONFIRM_EXTERNAL_AGENT", "maybe"),
     ("PLATFORMA_C2D_CLID_POOL", '["0115550003"'),
     ("PLATFORMA_C2D_CLID_POOL", "[1, 2]")],
)
def test_bad_env_value_names_the_variable_and_the_key(var, value):
    problem = one_problem(env={var: value})
    assert var in problem
    assert var.removeprefix("PLATFORMA_C2D_").lower().replace("_", ".", 1) in problem


def test_unknown_env_variable_is_a_problem_naming_it():
    problem = one_problem(env={"PLATFORMA_C2D_ARI_PASWORD": SECRET})
    assert problem.startswith("PLATFORMA_C2D_ARI_PASWORD: unknown environment variable")
    assert "PLATFORMA_C2D_ARI_PASSWORD" in problem  # the suggestion
    assert SECRET not in problem


def test_an_unknown_env_variable_is_never_taken_for_an_unrelated_one():
    problem = one_problem(env={"PLATFORMA_C2D_LIMITS_FOO": "1"})
    assert problem.startswith("PLATFORMA_C2D_LIMITS_FOO: unknown environment variable")
    assert "did you mean" not in problem and "PLATFORMA_C2D_<SECTION>_<KEY>" in problem, problem


def test_unknown_env_section_is_a_problem():
    assert one_problem(env={"PLATFORMA_C2D_FOO_BAR": "1"}).startswith("PLATFORMA_C2D_FOO_BAR:")


def test_env_without_the_prefix_and_the_config_path_variable_are_ignored():
    env = {"PATH": "/bin", "PLATFORMA_C2D_CONFIG": "/etc/x.toml", "PLATFORMA_C2DX": "1"}
    assert loads_config("", env=env) == Config()


def test_env_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("PLATFORMA_C2D_LOG_LEVEL", "debug")
    assert loads_config("").log.level == "DEBUG"


# -- unknown names, types, several problems at once ----------------------------


def test_unknown_key_is_a_problem_with_a_suggestion():
    problem = one_problem(f'[ari]\npasword = "{SECRET}"')
    assert problem.startswith("ari.pasword: unknown key")
    assert "password" in problem
    assert SECRET not in problem


def test_unknown_section_is_a_problem():
    assert one_problem("[dialing]\nx = 1").startswith("[dialing]: unknown section")


def test_section_that_is_not_a_table_is_a_problem():
    assert one_problem("dial = 5") == "dial: must be a table ([dial])"


@pytest.mark.parametrize(
    "text, key",
    [('[dial]\nagent_ring_timeout_s = "30"', "dial.agent_ring_timeout_s"),
     ("[dial]\nagent_ring_timeout_s = 30.0", "dial.agent_ring_timeout_s"),
     ("[dial]\nagent_ring_timeout_s = true", "dial.agent_ring_timeout_s"),
     ('[dial]\nconfirm_external_agent = "yes"', "dial.confirm_external_agent"),
     ('[clid]\npool = "0115550001"', "clid.pool"),
     ("[clid]\npool = [115550001]", "clid.pool"),
     ("[clid]\ndefault = 115550000", "clid.default"),
     ("[ari]\nrequest_timeout_s = inf", "ari.request_timeout_s"),
     ('[ari]\nrequests = "ws"', "ari.requests")],
)
def test_wrong_type_is_a_problem_naming_the_key(text, key):
    assert one_problem(text).startswith(f"{key}: must be")


def test_every_problem_is_reported_at_once():
    text = """
[ari]
url = "ftp://127.0.0.1"
[dial]
agent_ring_timeout_s = "abc"
max_call_duration_s = 0
[log]
level = "LOUD"
[nope]
"""
    found = problems(text, env={"PLATFORMA_C2D_HTTP_THREADS": "many"})
    keys = [p.split(":")[0].split(" ")[0] for p in found]
    assert sorted(keys) == sorted([
        "ari.url", "dial.agent_ring_timeout_s", "dial.max_call_duration_s",
        "log.level", "[nope]", "http.threads"])


def test_config_error_message_lists_every_problem():
    with pytest.raises(ConfigError) as info:
        loads_config("[dial]\ntone_s = -1\nagent_ring_timeout_s = 0", env={})
    text = str(info.value)
    assert text.startswith("invalid configuration (2 problems):")
    assert "dial.tone_s" in text and "dial.agent_ring_timeout_s" in text


def test_problem_message_follows_the_documented_shape():
    assert one_problem('[dial]\nagent_ring_timeout_s = "abc"') == (
        "dial.agent_ring_timeout_s: must be a positive integer (seconds, at most 3600), got 'abc'")


# -- files -----------------------------------------------------------------------


def test_bad_toml_is_a_problem_with_its_line(tmp_path):
    path = tmp_path / "c2d.toml"
    path.write_text('[ari]\nurl = "http://127.0.0.1:8088"\nusername c2d\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    [problem] = info.value.problems
    assert str(path) in problem and "invalid TOML" in problem and "line 3" in problem


def test_missing_file_is_a_problem(tmp_path):
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.problems == [f"{path}: config file not found"]


def test_missing_file_and_bad_env_are_reported_together(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.toml", env={"PLATFORMA_C2D_HTTP_THREADS": "x"})
    assert len(info.value.problems) == 2


def test_file_that_is_not_utf8_is_a_problem(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[ari]\nusername = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(path), env={})
    assert "not UTF-8" in info.value.problems[0]


# -- value rules -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1:8088", "127.0.0.1:8088", "http://127.0.0.1:8088/ari",
            "http://127.0.0.1:0", "http://127.0.0.1:8088?x=1", "http://"],
)
def test_ari_url_must_be_http_host_port(url):
    assert one_problem(f'[ari]\nurl = "{url}"').startswith("ari.url: must be an http(s)://")


@pytest.mark.parametrize(
    "url", ["https://192.0.2.10:8089", "http://[::1]:8088", "http://pbx.example.com"],
)
def test_ari_url_accepts_https_ipv6_and_no_port(url):
    assert loads_config(f'[ari]\nurl = "{url}/"', env={}).ari.url == url


def test_ari_url_with_credentials_is_refused_without_echoing_them():
    problem = one_problem(f'[ari]\nurl = "http://c2d:{SECRET}@127.0.0.1:8088"')
    assert problem.startswith("ari.url:") and SECRET not in problem


@pytest.mark.parametrize(
    "key, value",
    [("agent_endpoint", "PJSIP/1001"), ("agent_endpoint", "PJSIP/{agent}@{number}"),
     ("agent_endpoint", "PJSIP/{agent!r}"), ("agent_endpoint", "PJSIP/{agent"),
     ("agent_endpoint", "{agent}"), ("trunk_endpoint", "PJSIP/{agent}@trunk"),
     ("trunk_endpoint", "PJSIP/trunk")],
)
def test_endpoints_need_their_placeholder_and_no_other(key, value):
    assert one_problem(f'[dial]\n{key} = "{value}"').startswith(f"dial.{key}: must be")


def test_endpoints_accept_other_technologies():
    config = loads_config('[dial]\nagent_endpoint = "Local/{agent}@agents"\n'
                          'trunk_endpoint = "SIP/carrier/{number}"', env={})
    assert config.dial.agent_endpoint == "Local/{agent}@agents"


@pytest.mark.parametrize(
    "key", ["agent_ring_timeout_s", "callee_ring_timeout_s", "max_call_duration_s"])
@pytest.mark.parametrize("value", [0, -5])
def test_timeouts_must_be_positive_integers(key, value):
    assert one_problem(f"[dial]\n{key} = {value}").startswith(
        f"dial.{key}: must be a positive integer (seconds")


@pytest.mark.parametrize("section,key,value", [
    ("limits", "idempotency_window_s", "99999999999"),     # a date out of range on every POST
    ("ari", "request_timeout_s", "1e308"),                 # a socket timeout that overflows
    ("ari", "reconnect_max_backoff_s", "7200"),
    ("dial", "callee_ring_timeout_s", "4294963"),          # originate's timeout (ms) in a C int overflows
    ("agi", "read_timeout_s", "7200"),
    ("dial", "max_call_duration_s", "31536001"),
    ("dial", "tone_s", "3601"),
    ("http", "threads", "100000"),
    ("limits", "writes_per_minute", "1000001"),
    ("limits", "reads_per_minute", "1000001"),
])
def test_numbers_out_of_range_fail_at_start_up(section, key, value):
    """SPEC §7: a clear start-up error, never a failure at the first request."""
    problem = one_problem(f"[{section}]\n{key} = {value}")
    assert problem.startswith(f"{section}.{key}: must be") and "at most" in problem


def test_the_largest_accepted_values_load():
    config = loads_config("[limits]\nidempotency_window_s = 31536000\n"
                          "[ari]\nrequest_timeout_s = 3600.0\n[dial]\ntone_s = 3600", env={})
    assert config.limits.idempotency_window_s == 31_536_000 and config.ari.request_timeout_s == 3600.0


_H1, _H2 = "a" * 64, "b" * 64


@pytest.mark.parametrize("text,problem", [
    (f'[[auth.token]]\nsha256 = "{_H1}"\nname = "crm"\n[[auth.token]]\nsha256 = "{_H2}"\nname = "crm"',
     "auth.token[1].name: 'crm' is also the name of auth.token[0]"),
    (f'[auth]\ntokens_sha256 = ["{_H1}"]\n[[auth.token]]\nsha256 = "{_H2}"\nname = "token-1"',
     "auth.token[0].name: 'token-1' is also the name of auth.tokens_sha256[0]"),
    (f'[auth]\ntokens_sha256 = ["{_H1}"]\n[[auth.token]]\nsha256 = "{_H1}"\nname = "crm"',
     "auth.token[0].sha256: the same token as auth.tokens_sha256[0]"),
    (f'[auth]\ntokens_sha256 = ["{_H1}", "{_H1.upper()}"]',
     "auth.tokens_sha256[1]: the same token as auth.tokens_sha256[0]"),
])
def test_two_tokens_never_share_a_name_or_a_secret(text, problem):
    """Rate limits and Idempotency-Keys are kept per token name."""
    assert one_problem(text).startswith(problem)


def test_tone_may_be_zero_but_not_negative():
    assert loads_config("[dial]\ntone_s = 0", env={}).dial.tone_s == 0
    assert one_problem("[dial]\ntone_s = -1").startswith("dial.tone_s:")


@pytest.mark.parametrize(
    "number", ["115550000", "01155500001", "+27115550000", "0115550000\n", "011555000a",
               "0900 555000", "00271155500001", "０１１５５５００００"],
)
def test_clid_numbers_follow_spec_section_1(number):
    assert one_problem(f'[clid]\ndefault = {json.dumps(number)}').startswith(
        "clid.default: must be a CLID number")
    assert one_problem(f'[clid]\npool = [{json.dumps(number)}]').startswith(
        "clid.pool[0]: must be a CLID number")
    assert one_problem(f'[clid]\nallowed = [{json.dumps(number)}]').startswith(
        "clid.allowed[0]: must be a CLID number")


def test_clid_accepts_27_numbers():
    config = loads_config('[clid]\ndefault = "27115550000"', env={})
    assert config.clid.default == "27115550000"


def test_empty_clid_pool_is_allowed():
    assert loads_config("[clid]\npool = []", env={}).clid.pool == ()


def test_clid_pool_must_be_a_subset_of_allowed():
    found = problems('[clid]\nallowed = ["0115550000", "0115550001"]')
    assert found == ["clid.pool: 0115550002 is not in clid.allowed"]


def test_clid_default_must_be_in_allowed():
    found = problems('[clid]\nallowed = ["0115550001", "0115550002"]')
    assert found == ["clid.default: 0115550000 is not in clid.allowed"]


def test_clid_allowed_covering_default_and_pool_is_accepted():
    allowed = '["0115550000", "0115550001", "0115550002", "0115550009"]'
    assert len(loads_config(f"[clid]\nallowed = {allowed}", env={}).clid.allowed) == 4


@pytest.mark.parametrize("digest", ["ab" * 31, "ab" * 33, "zz" * 32, "ab" * 31 + "a "])
def test_token_hashes_must_be_64_hex_characters(digest):
    problem = one_problem(f'[auth]\ntokens_sha256 = ["{digest}"]')
    assert problem.startswith("auth.tokens_sha256[0]: must be 64 hex characters")
    assert digest not in problem


def test_token_hashes_are_stored_lower_case():
    config = loads_config(f'[auth]\ntokens_sha256 = ["{HASH.upper()}"]', env={})
    assert config.auth.tokens_sha256 == (HASH,)


def test_token_tables_are_read_from_auth_token():
    text = f"""
[[auth.token]]
sha256 = "{HASH}"
agents = ["1001", "0115551234"]
name = "crm"

[[auth.token]]
sha256 = "{HASH2}"
"""
    config = loads_config(text, env={})
    assert config.auth.tokens == (
        TokenConfig(sha256=HASH, agents=("1001", "0115551234"), name="crm"),
        TokenConfig(sha256=HASH2, agents=(), name=""),
    )


def test_token_table_problems_name_the_entry():
    text = '[[auth.token]]\nagents = ["12"]\ncolour = "red"\n'
    found = problems(text)
    assert sorted(p.split(":")[0] for p in found) == [
        "auth.token[0].agents[0]", "auth.token[0].colour", "auth.token[0].sha256"]


@pytest.mark.parametrize("prefix", ["+27", "09 00", "", "٠٩"])
def test_policy_prefixes_must_be_ascii_digits(prefix):
    for key in ("callee_allow_prefixes", "callee_deny_prefixes",
                "agent_number_allow_prefixes", "agent_number_deny_prefixes"):
        assert one_problem(f'[policy]\n{key} = ["{prefix}"]').startswith(
            f"policy.{key}[0]: must be ASCII digits")


def test_policy_prefixes_are_read():
    config = loads_config('[policy]\ncallee_deny_prefixes = ["0900", "00"]', env={})
    assert config.policy.callee_deny_prefixes == ("0900", "00")


def test_limits_rules():
    assert loads_config("[limits]\nwrites_per_minute = 0", env={}).limits.writes_per_minute == 0
    assert loads_config("[limits]\nreads_per_minute = 0", env={}).limits.reads_per_minute == 0
    assert "replaced by writes_per_minute and reads_per_minute" in one_problem("[limits]\nrequests_per_minute = 9")
    assert one_problem("[limits]\nmax_active_calls_per_agent = 0").startswith(
        "limits.max_active_calls_per_agent:")
    assert one_problem("[limits]\nidempotency_window_s = 0").startswith(
        "limits.idempotency_window_s:")


def test_log_level_and_format_are_enums_case_insensitive():
    config = loads_config('[log]\nlevel = "warning"\nformat = "TEXT"', env={})
    assert (config.log.level, config.log.format) == ("WARNING", "text")
    assert one_problem('[log]\nlevel = "TRACE"').startswith("log.level: must be one of DEBUG")
    assert one_problem('[log]\nformat = "xml"').startswith("log.format: must be one of json")


@pytest.mark.parametrize("url", ["/var/lib/calls.sqlite3", "sqlite:", "calls.db", ""])
def test_store_url_must_look_like_a_sqlalchemy_url(url):
    assert one_problem(f'[store]\nurl = "{url}"').startswith("store.url: must be a SQLAlchemy URL")


def test_ari_app_and_username_rules():
    assert one_problem('[ari]\napp = "click 2 dial"').startswith("ari.app:")
    assert one_problem('[ari]\nusername = "a:b"').startswith("ari.username:")
    assert one_problem('[ari]\npassword = ""') == (
        "ari.password: must be a non-empty string of printable characters")


# -- security --------------------------------------------------------------------


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "192.0.2.20:8080", "[::]:8080",
                                    "pbx.example.com:8080"])
def test_non_loopback_listen_without_tokens_is_refused(listen):
    host = split_listen(listen)[0]
    assert one_problem(f'[http]\nlisten = "{listen}"') == (
        f"auth.tokens_sha256: empty, refusing to listen on {host} without authentication")


@pytest.mark.parametrize("listen", ["127.0.0.1:8080", "127.1.2.3:8080", "[::1]:8080",
                                    "localhost:8080", "LOCALHOST:8080"])
def test_loopback_listen_without_tokens_is_allowed(listen):
    assert loads_config(f'[http]\nlisten = "{listen}"', env={}).http.listen == listen


def test_non_loopback_listen_with_a_token_is_allowed():
    text = f'[http]\nlisten = "192.0.2.20:8080"\n[auth]\ntokens_sha256 = ["{HASH}"]'
    assert loads_config(text, env={}).http.host == "192.0.2.20"
    text = f'[http]\nlisten = "192.0.2.20:8080"\n[[auth.token]]\nsha256 = "{HASH}"'
    assert loads_config(text, env={}).auth.any_token


def secret_config() -> Config:
    return loads_config(
        f'[ari]\npassword = "{SECRET}"\n[auth]\ntokens_sha256 = ["{HASH}"]\n'
        f'[[auth.token]]\nsha256 = "{HASH2}"\nname = "crm"\n'
        f'[store]\nurl = "postgresql+psycopg://c2d:{SECRET}@192.0.2.30/c2d"',
        env={},
    )


def test_secrets_never_appear_in_repr():
    text = repr(secret_config()) + str(secret_config())
    for secret in (SECRET, HASH, HASH2):
        assert secret not in text
    assert "crm" in text  # the token's name is not a secret


def test_redacted_masks_every_secret_and_is_json():
    redacted = secret_config().redacted()
    text = json.dumps(redacted)
    for secret in (SECRET, HASH, HASH2):
        assert secret not in text
    assert redacted["ari"]["password"] == "***"
    assert redacted["auth"]["tokens_sha256"] == ["***"]
    assert redacted["auth"]["token"] == [{"sha256": "***", "agents": [], "name": "crm"}]
    assert redacted["store"]["url"] == "postgresql+psycopg://c2d:***@192.0.2.30/c2d"
    assert redacted["dial"]["agent_ring_timeout_s"] == 30


def test_a_password_given_as_a_query_parameter_of_the_store_url_is_masked_too():
    from platforma_c2d.config import mask_url
    from platforma_c2d.store.journal import store_problem

    url = f"postgresql+psycopg://c2d@/c2d?host=/run/postgresql&password={SECRET}&sslmode=disable"
    assert mask_url(url) == "postgresql+psycopg://***@/c2d?host=/run/postgresql&password=***&sslmode=disable"
    cfg = loads_config(f'[store]\nurl = "{url}"\n', env={})
    assert SECRET not in json.dumps(cfg.redacted()) and SECRET not in repr(cfg)
    assert SECRET not in store_problem(url, RuntimeError(f"connection failed: password={SECRET}"))


def test_secrets_never_appear_in_problems():
    env = {
        "PLATFORMA_C2D_ARI_PASSWORD": SECRET + "\x07",
        "PLATFORMA_C2D_AUTH_TOKENS_SHA256": f"{HASH}x",
        "PLATFORMA_C2D_AUTH_TOKEN": f'[{{"sha256": "{HASH2}z"}}]',
        "PLATFORMA_C2D_AUTH_TOKENZ": SECRET,
        "PLATFORMA_C2D_STORE_URL": f"bad url c2d:{SECRET}@192.0.2.30",
    }
    found = problems("", env=env)
    assert len(found) == 5
    text = "\n".join(found)
    for secret in (SECRET, HASH, HASH2):
        assert secret not in text


def test_secret_of_wrong_type_is_not_echoed():
    text = "\n".join(problems(f'[ari]\npassword = ["{SECRET}"]\n[auth]\ntoken = "{HASH}"'))
    assert SECRET not in text and HASH not in text


def test_refused_values_are_escaped_in_problems():
    problem = one_problem('[ari]\napp = "a\\nERROR forged line"')
    assert "\n" not in problem and "\\n" in problem


def test_auto_answer_per_agent_overrides_the_default_and_needs_pjsip():
    from platforma_c2d.calls.autoanswer import auto_answer_variables

    per_agent = ("1002:alert-info", "1003:off")
    assert auto_answer_variables("1001", "PJSIP/1001", "call-info", per_agent) == {
        "PJSIP_HEADER(add,Call-Info)": "<sip:127.0.0.1>;answer-after=0"}
    assert auto_answer_variables("1002", "PJSIP/1002", "off", per_agent) == {
        "PJSIP_HEADER(add,Alert-Info)": "<http://127.0.0.1>;info=alert-autoanswer;delay=0"}
    assert auto_answer_variables("1003", "PJSIP/1003", "call-info", per_agent) == {}
    assert auto_answer_variables("1001", "Local/1001@agents", "call-info", per_agent) == {}
