"""``check``: the media settings of the PJSIP endpoints, which decide whether a call
has audio at all and whether a long call stays up (SPEC §3.9, field reports C32, C33).

Read from ARI: ``GET /asterisk/config/dynamic/res_pjsip/endpoint/{name}``
gives each endpoint's settings (``allow``, ``rtp_timeout``,
``rtp_timeout_hold``), ``GET /asterisk/modules`` the loaded codec
translators. ARI has no query for Asterisk's translation matrix (``core
show translation`` is CLI only), so a path is judged from the modules: a
codec that a phone may use and the trunk does not take is translated
through signed linear, which needs that codec's translator module and one
of the trunk's.
"""

from __future__ import annotations

import re

#: The translator modules of each codec (to and from signed linear); any one will do.
#: Opus has Digium's binary ``codec_opus`` and the open-source ``codec_opus_open_source``
#: that distributions ship.
TRANSLATORS = {
    "ulaw": ("codec_ulaw.so",), "alaw": ("codec_alaw.so",),
    "opus": ("codec_opus.so", "codec_opus_open_source.so"),
    "g722": ("codec_g722.so",), "gsm": ("codec_gsm.so",), "g726": ("codec_g726.so",),
    "ilbc": ("codec_ilbc.so",), "speex": ("codec_speex.so",), "lpc10": ("codec_lpc10.so",),
    "adpcm": ("codec_adpcm.so",), "g729": ("codec_g729.so",),
}


def _translators(codec: str) -> tuple[str, ...]:
    return TRANSLATORS.get(codec, (f"codec_{codec}.so",))


#: Codecs that are signed linear already: no translator needed.
_LINEAR = re.compile(r"^slin\d*$")


def codecs(allow: str) -> list[str]:
    """The codec names of an endpoint's ``allow`` as ARI shows it: ``(ulaw|alaw)`` or ``ulaw,alaw``."""
    return [c for c in re.split(r"[()|,\s]+", allow.lower()) if c and c != "all"]


def settings(tuples: list[dict]) -> dict[str, str]:
    """The ``[{"attribute": ..., "value": ...}]`` list of ARI's dynamic config as a dict."""
    return {t.get("attribute", ""): str(t.get("value", "")) for t in tuples}


#: How ARI's dynamic config may write a true boolean.
_TRUE = ("yes", "true", "on", "1")


def _seconds(value: str) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def check_media(trunk: str, endpoints: dict[str, dict[str, str]],
                modules: list[dict]) -> list[tuple[str, str]]:
    """Judge the media settings of the trunk and the phones' endpoints.

    ``trunk``: the trunk endpoint's name; ``endpoints``: name → settings
    (:func:`settings`), the trunk's included; ``modules``: the list of
    ``GET /asterisk/modules``. Returns ``(level, line)`` pairs, level
    ``"ok"``, ``"WARN"`` or ``"FAIL"``:

    * FAIL: a codec an endpoint allows that the trunk does not, with no
      translator loaded for it or for every trunk codec (the call connects
      and carries no audio, C33);
    * FAIL: ``rtp_timeout_hold`` set on an endpoint of a call: a call held
      longer than that is hung up (C32);
    * WARN: ``rtp_timeout`` set: a leg that sends no RTP for that long
      (silence suppression, a muted browser) is hung up;
    * WARN: ``allow_transfer`` on a phone's endpoint (any but the trunk): a
      blind transfer to a colleague's extension hands the customer over, one
      to a customer's number ends the call, attended transfers are not
      followed (docs/api.md, "Transfers"; ``calls/transfers.py``).
    * WARN: ``allow_transfer`` on the trunk: a REFER from the carrier (or
      from the callee, through it) moves the phone of a FastAGI call whose
      ``Dial()`` lacks the shipped pre-dial handler (docs/agi.md) out of the
      call into the trunk endpoint's ``context`` — on a PBX whose trunk
      context routes inbound calls, the callee chooses where the agent goes.
      The service's legs and ``[c2d-agi-call]`` refuse it
      (``calls.legs.TRUNK_REFER_CONTEXT``).
    """
    running = {m.get("name", ""): m.get("status", "") for m in modules}
    loaded = {name for name, status in running.items() if status.lower() == "running"}
    out: list[tuple[str, str]] = []
    trunk_codecs = codecs(endpoints.get(trunk, {}).get("allow", ""))
    missing_trunk = [c for c in trunk_codecs if not _LINEAR.match(c) and not loaded & set(_translators(c))]
    paths_ok = True
    for name, conf in sorted(endpoints.items()):
        for codec in codecs(conf.get("allow", "")):
            if name == trunk or codec in trunk_codecs or _LINEAR.match(codec):
                continue
            need = [_translators(codec)]
            if trunk_codecs and len(missing_trunk) == len(trunk_codecs):
                need += [_translators(c) for c in trunk_codecs]
            absent = [" or ".join(alternatives) for alternatives in need if not loaded & set(alternatives)]
            if absent:
                paths_ok = False
                out.append(("FAIL", f"codecs: endpoint {name} may use {codec}, the trunk {trunk} takes only "
                                    f"{', '.join(trunk_codecs)}, and Asterisk cannot translate "
                                    f"({', '.join(absent)} not loaded): such calls connect with no audio. "
                                    f"'module load {absent[0].split(' or ')[-1]}' (and load it in modules.conf), or remove "
                                    f"{codec} from the endpoint's allow"))
    if paths_ok and trunk_codecs:
        out.append(("ok", f"codecs: every codec of the endpoints reaches the trunk ({', '.join(trunk_codecs)})"))
    for name, conf in sorted(endpoints.items()):
        hold = _seconds(conf.get("rtp_timeout_hold", "0"))
        if hold:
            out.append(("FAIL", f"media: endpoint {name} has rtp_timeout_hold={hold}: a call held longer than "
                                f"{hold} s is hung up (SPEC §3.9); set rtp_timeout_hold=0"))
        idle = _seconds(conf.get("rtp_timeout", "0"))
        if idle:
            out.append(("WARN", f"media: endpoint {name} has rtp_timeout={idle}: a leg that sends no audio "
                                f"for {idle} s (silence suppression, a muted phone) is hung up"))
        if name == trunk and conf.get("allow_transfer", "").lower() in _TRUE:
            out.append(("WARN", f"transfer: the trunk endpoint {name} has allow_transfer=yes: a REFER from the "
                                "carrier (or the callee, through it) takes the phone of a FastAGI call whose "
                                "Dial() lacks the pre-dial handler of [c2d-agi-call] out of the call into "
                                f"the trunk's context {conf.get('context') or '(unset)'}; set allow_transfer=no"))
        if name != trunk and conf.get("allow_transfer", "").lower() in _TRUE:
            out.append(("WARN", f"transfer: endpoint {name} has allow_transfer=yes: a blind transfer (REFER) "
                                "from this phone to a colleague's extension hands the customer over; one to "
                                "a customer's number ends the call, and attended transfers are not followed "
                                "(docs/api.md, Transfers); set allow_transfer=no to keep calls with the agent"))
    return out
