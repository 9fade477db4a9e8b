"""What a FastAGI session may trust (SPEC sections 6, 9; docs/security.md).

Asterisk writes the ``agi_*`` environment as ``key: value`` lines, and some
values come straight from the caller: the From user (``agi_callerid``),
the display name, the dialled number (``agi_extension``), ``agi_dnid``,
``agi_rdnis``. A SIP URI may carry an encoded newline, which Asterisk
decodes and writes as it is: the caller can then add a line of their own
(a second ``agi_extension``, a forged ``agi_uniqueid``) or end the
environment early. Hence three rules, here:

* :func:`parse_environment` refuses an environment with a line that is not
  ``key: value``, a key Asterisk does not send, a key given twice, a
  value with a control character or a leading or trailing space, or a
  missing key. The environment is never the source of who or what the
  call is: :func:`read_identity` reads the channel's name, technology,
  endpoint, unique id and extension from Asterisk with ``GET FULL
  VARIABLE`` and refuses a session whose environment says otherwise.
* :func:`check_secret` authenticates the session: before anything is
  trusted the server asks the peer for Asterisk's AstDB entry
  ``c2d/agi_secret`` (``DATABASE GET``) and compares it in constant time
  with ``[agi] secret``. Only the Asterisk whose administrator stored the
  secret can answer; any other local process that connects cannot, so it
  can neither write calls into the journal nor end AGI calls. The secret
  is never in the dialplan or an ``AGI()`` argument, which Asterisk writes
  to its verbose logs (docs/decisions/0016-agi-secret-in-astdb.md).
* Answers to commands are read strictly (``AgiChannel.get_result``) and a
  session ends with a check that both sides are still in step
  (``AgiChannel.check_in_step``): a value with a newline cannot answer a
  later command.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from platforma_c2d.config.checks import SAMPLE_AGI_SECRET

#: The keys of a FastAGI environment as Asterisk 22 sends them, in order
#: (``agi_network_script`` only when the URL has a path; ``agi_arg_N`` for
#: the ``AGI()`` arguments).
ENVIRONMENT_KEYS = (
    "agi_network", "agi_network_script", "agi_request", "agi_channel", "agi_language",
    "agi_type", "agi_uniqueid", "agi_version", "agi_callerid", "agi_calleridname",
    "agi_callingpres", "agi_callingani2", "agi_callington", "agi_callingtns", "agi_dnid",
    "agi_rdnis", "agi_context", "agi_extension", "agi_priority", "agi_enhanced",
    "agi_accountcode", "agi_threadid",
)
#: Keys that must be present: every key above.
REQUIRED_KEYS = frozenset(ENVIRONMENT_KEYS)
_ARG_KEY = re.compile(r"agi_arg_[1-9][0-9]{0,2}")
#: Where Asterisk keeps the shared secret: AstDB family and key
#: (``asterisk -rx 'database put c2d agi_secret <secret>'``).
ASTDB_FAMILY, ASTDB_KEY = "c2d", "agi_secret"
#: The sample secret earlier versions shipped in extensions.conf and the sample TOML.
SAMPLE_SECRET = SAMPLE_AGI_SECRET

#: an Asterisk unique id (``[systemname-]seconds.sequence``, or an id given at originate)
_UNIQUEID = re.compile(r"[0-9A-Za-z._-]{1,80}")


class AgiRefused(Exception):
    """A session that must not be served: a forged or broken environment,
    a missing or wrong secret, answers out of step. ``str(exc)`` says why,
    escaped (safe to log)."""


def _show(text: str, limit: int = 40) -> str:
    return ascii(text)[1:-1][:limit]


def parse_environment(lines: list[str]) -> dict[str, str]:
    """The environment of a session from its lines (without the final blank line).

    ``lines``: each line as received, without its ``"\\n"`` (a ``"\\r"``
    is kept, and refused). Returns ``{key: value}``. Raises
    :class:`AgiRefused` for a line that is not ``key: value``, an unknown
    or repeated key, a value with a control character (``str.isprintable``
    false: also CR, TAB, DEL) or with a leading or trailing space, or a
    key of :data:`REQUIRED_KEYS` missing.
    """
    env: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        key, sep, value = line.partition(": ")
        if not sep:
            key, sep, value = line.partition(":")     # "agi_accountcode:" with nothing after
            if not sep or value:
                raise AgiRefused(f"environment line {number} is not 'key: value': {_show(line)}")
        if key not in REQUIRED_KEYS and not _ARG_KEY.fullmatch(key):
            raise AgiRefused(f"environment line {number}: unknown key {_show(key)}")
        if key in env:
            raise AgiRefused(f"environment line {number}: {key} given twice")
        if not value.isprintable() or value != value.strip(" "):
            raise AgiRefused(f"environment line {number}: {key} has a control character "
                             "or a stray space")
        env[key] = value
    missing = sorted(REQUIRED_KEYS - env.keys())
    if missing:
        raise AgiRefused(f"environment without {', '.join(missing)}")
    return env


def check_secret(agi, secret: str) -> None:
    """Refuse a session whose peer cannot show the shared secret.

    ``agi``: an ``AgiChannel`` (``env``, ``database_get(family, key)``);
    ``secret``: ``[agi] secret``; empty means no secret is asked for (the
    session passes, nothing is sent; ``check`` warns). Otherwise:

    * an ``AGI()`` argument equal to the secret (the form of earlier
      versions) is refused without asking anything: Asterisk has written
      that argument to its verbose logs, so the secret must be changed and
      moved to AstDB;
    * the peer is sent ``DATABASE GET c2d agi_secret`` and its answer must
      equal ``secret``, compared in constant time
      (:func:`hmac.compare_digest`). A peer that is not our Asterisk, or an
      Asterisk whose AstDB lacks the key or holds another value, is refused.

    Raises :class:`AgiRefused` (its text never holds either value), pyst2
    ``AGIError`` / ``AgiClosed`` when the command fails.
    """
    if not secret:
        return
    wanted = secret.encode("utf-8")
    for key, value in agi.env.items():
        if _ARG_KEY.fullmatch(key) and hmac.compare_digest(value.encode("utf-8"), wanted):
            raise AgiRefused(f"the secret was given as an AGI() argument ({key}), which Asterisk "
                             "writes to its logs: remove it from the dialplan, change [agi] "
                             "secret and store the new one in AstDB "
                             f"({ASTDB_FAMILY}/{ASTDB_KEY}, docs/security.md)")
    held = agi.database_get(ASTDB_FAMILY, ASTDB_KEY)
    if held is None:
        raise AgiRefused(f"the peer has no AstDB {ASTDB_FAMILY}/{ASTDB_KEY} (not our Asterisk, "
                         f"or the secret was never stored: asterisk -rx 'database put "
                         f"{ASTDB_FAMILY} {ASTDB_KEY} <[agi] secret>')")
    if not hmac.compare_digest(held.encode("utf-8"), wanted):
        raise AgiRefused(f"the peer's AstDB {ASTDB_FAMILY}/{ASTDB_KEY} is not [agi] secret")


@dataclass(frozen=True)
class ChannelIdentity:
    """Who and what the session's channel is, as Asterisk's channel says.

    ``name``: channel name (``PJSIP/3001-0000002a``); ``tech``: channel
    technology (``PJSIP``); ``endpoint``: the PJSIP endpoint (``""`` for
    other technologies); ``uniqueid``: the channel's unique id (its ARI
    id); ``exten``: the extension the dialplan runs (the dialled number).
    """

    name: str
    tech: str
    endpoint: str
    uniqueid: str
    exten: str


def read_identity(agi, env: dict[str, str]) -> ChannelIdentity:
    """Read the channel's identity from Asterisk (``GET FULL VARIABLE``), never
    from the environment, and check that the environment agrees.

    ``agi``: an ``AgiChannel`` (``get_full(name) -> str``); ``env``: its
    parsed environment. Raises :class:`AgiRefused` when the unique id is
    not made of ``A-Z a-z 0-9 . _ -`` or when the environment's channel,
    type, unique id or extension differ from the channel's (a forged
    line); pyst2 ``AGIError`` / ``AgiClosed`` when a command fails.
    """
    ident = ChannelIdentity(
        name=agi.get_full("CHANNEL(name)"), tech=agi.get_full("CHANNEL(channeltype)"),
        endpoint="", uniqueid=agi.get_full("UNIQUEID"), exten=agi.get_full("EXTEN"))
    if ident.tech == "PJSIP":
        ident = ChannelIdentity(ident.name, ident.tech, agi.get_full("CHANNEL(endpoint)"),
                                ident.uniqueid, ident.exten)
    if not _UNIQUEID.fullmatch(ident.uniqueid):
        raise AgiRefused(f"channel unique id {_show(ident.uniqueid)} is not an Asterisk id")
    for key, actual in (("agi_channel", ident.name), ("agi_type", ident.tech),
                        ("agi_uniqueid", ident.uniqueid), ("agi_extension", ident.exten)):
        if env.get(key) != actual:
            raise AgiRefused(f"{key} of the environment is not the channel's")
    return ident
