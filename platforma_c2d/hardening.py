"""The doors of the PBX that the configuration leaves open (docs/security.md).

Two kinds of finding, each a line that says what to change:

* **sample secrets** (:func:`sample_secret_findings`, no I/O): the shipped
  ARI password ``change-me`` is a failure (SPEC §7: ``serve`` refuses to
  run with it, ``check`` fails); an unset or sample FastAGI secret is a
  warning (``[agi] secret``).
* **ARI where browsers connect** (:func:`ari_on_browser_listeners`, HTTP
  probes): every listener of Asterisk's HTTP server serves every URI, so
  the TLS listener that browser phones need for ``wss://…/ws`` serves ARI
  as well, to anyone who reaches it. ``[ari] browser_urls`` names those
  listeners; ARI answering there (anything but 404 for ``/ari/…``, a 401
  included: a stranger may then guess passwords and originate calls) is a
  failure.
* **SIP doors** (:func:`sip_door_findings`, from the endpoints' settings
  read over ARI): an endpoint whose auth still holds the shipped sample
  password of ``pjsip_site.conf`` (``change-me-1001``) is a failure; an
  endpoint with no auth that Asterisk identifies by user name is a
  warning: whoever sends its name as From user calls as it, from
  anywhere, with no password asked.
"""

from __future__ import annotations

import httpx

from collections.abc import Callable

from platforma_c2d.agi.trust import SAMPLE_SECRET as SAMPLE_AGI_SECRET
from platforma_c2d.config import Config

#: The ARI password shipped in asterisk_conf/ari.conf and the sample TOML.
SAMPLE_ARI_PASSWORD = "change-me"

#: How the SIP passwords shipped in asterisk_conf/pjsip_site.conf begin (``change-me-1001``).
SAMPLE_SIP_PASSWORD_PREFIX = "change-me"
#: At most this many endpoint names are listed in one line of :func:`sip_door_findings`.
NAMES_SHOWN = 10

ARI_SAMPLE_FAILURE = (
    "ari.password: the shipped sample password 'change-me' is in use; anyone who "
    "reaches ARI can originate calls with it. Set a password of your own in ari.conf "
    "(store it hashed: password_format=crypt, 'ari mkpasswd' on the Asterisk CLI) and "
    "the same in [ari] password or PLATFORMA_C2D_ARI_PASSWORD")


def sample_secret_findings(cfg: Config) -> tuple[list[str], list[str]]:
    """``(failures, warnings)`` about sample or missing secrets in ``cfg``.

    Failure: ``[ari] password`` is :data:`SAMPLE_ARI_PASSWORD`. Warning:
    ``[agi] secret`` empty or the sample ``change-me-agi``; a webhook
    signing secret too short (:func:`short_signing_secrets`).
    """
    failures, warnings = [], []
    if cfg.ari.password == SAMPLE_ARI_PASSWORD:
        failures.append(ARI_SAMPLE_FAILURE)
    if not cfg.agi.secret:
        warnings.append("agi.secret: not set: any process that reaches the FastAGI port can "
                        "journal calls and end AGI calls; set one, and the same as "
                        "the AstDB entry c2d/agi_secret of Asterisk")
    elif cfg.agi.secret == SAMPLE_AGI_SECRET:
        warnings.append("agi.secret: the shipped sample 'change-me-agi' is in use; set a "
                        "secret of your own here and as the AstDB entry c2d/agi_secret "
                        "(asterisk -rx 'database put c2d agi_secret ...')")
    return failures, warnings + short_signing_secrets(cfg)


#: Fewer characters than this in a webhook signing secret are warned about.
MIN_SIGNING_SECRET = 16


def short_signing_secrets(cfg: Config) -> list[str]:
    """Warnings (``list[str]``) about webhook signing secrets shorter than
    :data:`MIN_SIGNING_SECRET` characters: each ``[[webhooks.endpoints]]``
    ``secret`` and ``[webhooks] callback_secret`` (SPEC §10). Whoever holds
    one signed delivery (a receiver's log, a proxy) can try short keys
    against its ``v1`` offline, and with the key found sign made-up events
    that the receiver accepts. The lines name the key, never the secret."""
    weak = [f"webhooks.endpoints[{e.name or i + 1}].secret" for i, e in enumerate(cfg.webhooks.endpoints)
            if len(e.secret) < MIN_SIGNING_SECRET]
    if cfg.webhooks.callback_secret and len(cfg.webhooks.callback_secret) < MIN_SIGNING_SECRET:
        weak.append("webhooks.callback_secret")
    return [f"{key}: the signing secret is shorter than {MIN_SIGNING_SECRET} characters: whoever "
            "holds one signed delivery can find it by trying keys, then sign events of their own "
            "that the receiver accepts; use a random one (openssl rand -hex 32)" for key in weak]


def open_door_findings(cfg: Config) -> list[str]:
    """Warnings about what ``cfg`` lets any caller do (docs/security.md, checklist item 8).

    ``[clid] allowed`` empty: a caller (any token, any phone) may present any
    well-formed number, someone else's included (caller-ID spoofing).
    ``[policy]`` with neither a callee allow nor a callee deny list: every
    number of the callee formats may be dialled, international and
    premium-rate ones included (toll fraud with a leaked token or SIP
    password). Allowed by SPEC §7, so warnings, never failures.
    """
    warnings = []
    if not cfg.clid.allowed:
        warnings.append("clid.allowed: empty: any token or phone may present any well-formed number "
                        "as the caller ID, someone else's included; list the numbers you own")
    policy = cfg.policy
    if not policy.callee_allow_prefixes and not policy.callee_deny_prefixes:
        warnings.append("policy: neither callee_allow_prefixes nor callee_deny_prefixes is set: every "
                        "callee number may be dialled, international (00...) and premium-rate ones "
                        "included; deny those prefixes, or allow only the ones you call")
    return warnings


def ari_on_browser_listeners(cfg: Config, timeout_s: float = 3.0) -> tuple[list[str], list[str]]:
    """``(failures, oks)``: whether ARI answers at ``[ari] browser_urls``.

    Each URL is probed with ``GET <url>/ari/asterisk/info`` without
    credentials and without checking the TLS certificate (the question is
    what a stranger reaches, not whether the certificate is good). A URL
    where nothing listens passes. Never raises for a network error.
    """
    failures, oks = [], []
    for url in cfg.ari.browser_urls:
        try:
            resp = httpx.get(url.rstrip("/") + "/ari/asterisk/info", timeout=timeout_s,
                             verify=False)
        except httpx.HTTPError:
            oks.append(f"ari: not served at {url} (nothing answers there)")
            continue
        if resp.status_code == 404:
            oks.append(f"ari: not served at {url}")
            continue
        failures.append(
            f"ari.browser_urls: ARI answers at {url} (HTTP {resp.status_code}), the listener "
            "where browsers connect: anyone who reaches it can try ARI passwords and originate "
            "calls. Keep Asterisk's TLS listener off (tlsenable=no) and put a reverse proxy "
            "that forwards only /ws in front of 127.0.0.1:8088 (docs/security.md)")
    return failures, oks


def _endpoints(names: list[str]) -> str:
    """``endpoint 1001`` / ``endpoints 1001, 1002``, at most :data:`NAMES_SHOWN` names."""
    shown = ", ".join(names[:NAMES_SHOWN])
    more = f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else ""
    return f"endpoint{'s' if len(names) > 1 else ''} {shown}{more}"


def _listed(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def sip_door_findings(endpoints: dict[str, dict[str, str]],
                      read_auth: Callable[[str], dict[str, str] | None]) -> tuple[list[str], list[str]]:
    """``(failures, warnings)`` about who can place calls as a PJSIP endpoint (docs/security.md).

    ``endpoints``: each endpoint's settings as ARI's dynamic config gives
    them (name → attribute → value); ``read_auth(name)``: an auth
    object's settings, or None when Asterisk has none of that name (each
    is read once). Failure: an endpoint's auth still holds a sample
    password of ``pjsip_site.conf`` (it starts with
    :data:`SAMPLE_SIP_PASSWORD_PREFIX`): anyone who read the sample
    registers and calls as that agent. Warning: an endpoint with no auth
    that ``identify_by`` lets Asterisk find by user name (its default,
    ``username,ip``): a stranger whose From user is its name, from any
    address, calls as it without a password. The lines name the
    endpoints, never a password.
    """
    auths: dict[str, dict[str, str] | None] = {}
    sample, by_name = [], []
    for name, settings in sorted(endpoints.items()):
        names = _listed(settings.get("auth", ""))
        if not names:
            if "username" in _listed(settings.get("identify_by", "username,ip")):
                by_name.append(name)
            continue
        for auth in names:
            if auth not in auths:
                auths[auth] = read_auth(auth)
            if (auths[auth] or {}).get("password", "").startswith(SAMPLE_SIP_PASSWORD_PREFIX):
                sample.append(name)
                break
    failures, warnings = [], []
    if sample:
        failures.append(
            f"pjsip: {_endpoints(sample)}: a sample SIP password of pjsip_site.conf "
            f"('{SAMPLE_SIP_PASSWORD_PREFIX}-...'): anyone who read the sample can register and "
            "place calls as that agent; give each auth a strong password of its own")
    if by_name:
        warnings.append(
            f"pjsip: {_endpoints(by_name)}: no auth, and identified by user name "
            "(identify_by includes username, Asterisk's default): anyone whose From user is its "
            "name calls as it, from any address, with no password asked; give it auth=, or "
            "identify_by=ip and an identify section with its phone's address")
    return failures, warnings
