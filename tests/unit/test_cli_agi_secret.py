"""``platforma-c2d agi-secret`` where it cannot work: it says what to do and never
prints the secret (the real Asterisk's AstDB: tests/integration/test_agi.py)."""

from __future__ import annotations

from platforma_c2d.cli import main


def test_agi_secret_without_asterisks_control_socket_names_it(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text('[agi]\nsecret = "a-secret-of-the-test"\n')
    socket = tmp_path / "asterisk.ctl"
    assert main(["agi-secret", "set", "--config", str(config), "--socket", str(socket)]) == 1
    out = capsys.readouterr()
    assert f"{socket}: no Asterisk control socket" in out.err, out
    assert "a-secret-of-the-test" not in out.out + out.err


def test_agi_secret_without_a_secret_in_the_config_is_a_usage_error(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text("[agi]\n")
    assert main(["agi-secret", "check", "--config", str(config)]) == 2
    assert "agi.secret: not set in the config" in capsys.readouterr().err
