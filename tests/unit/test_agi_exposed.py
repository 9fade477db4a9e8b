"""A FastAGI server other hosts can reach asks them for the secret (SPEC §9, docs/security.md).

Without ``[agi] secret`` any process that connects is served as if it were
Asterisk: it journals calls and ends AGI calls (and their events reach the
CRM's webhooks). On loopback only local processes can; on any other address
the whole network could, so the file is refused at start-up, as an API on a
public address without tokens is."""

from __future__ import annotations

import pytest

from platforma_c2d.config import ConfigError, loads_config


@pytest.mark.parametrize("host", ["192.0.2.10", "0.0.0.0", "[::]"])
def test_fastagi_on_a_network_address_without_a_secret_is_refused(host):
    with pytest.raises(ConfigError, match=r"agi.secret: empty, refusing to serve FastAGI on"):
        loads_config(f'[agi]\nlisten = "{host}:4573"\n', env={})
    with pytest.raises(ConfigError, match=r"agi.secret: empty"):
        loads_config("", env={"PLATFORMA_C2D_AGI_LISTEN": f"{host}:4573"})
    # The sample of earlier versions is public: as good as none.
    with pytest.raises(ConfigError, match=r"agi.secret: the public sample, refusing to serve FastAGI on"):
        loads_config(f'[agi]\nlisten = "{host}:4573"\nsecret = "change-me-agi"\n', env={})


@pytest.mark.parametrize("text", [
    '[agi]\nlisten = "192.0.2.10:4573"\nsecret = "4f9c2b7e1d0a"\n',   # exposed, with a secret
    '[agi]\nlisten = "127.0.0.1:4573"\n',                             # loopback, none needed
    '[agi]\nlisten = "127.0.0.1:4573"\nsecret = "change-me-agi"\n',   # loopback: check warns
    '[agi]\nlisten = "[::1]:4573"\n',
    "",                                                                # the default: loopback
])
def test_fastagi_on_loopback_or_with_a_secret_is_accepted(text):
    loads_config(text, env={})
