"""Reading SIPp message logs: when each callee's INVITE and its 200 OK went
by, for a UAS peer (agent phone, trunk) and a UAC peer (the phone of the
header path). The wire times of the set-up phases come from here.
"""

from __future__ import annotations

import re


def _user(value: str) -> str:
    m = re.search(r"sips?:([^@;>]+)@", value)
    return m.group(1) if m else ""


def uas_index(messages, callee_in: str) -> dict[str, dict]:
    """callee → {"invite": INVITE received at, "ok": its 200 OK sent at}, for a UAS log.

    ``callee_in``: "uri" (trunk: the Request-URI user) or "From" (agent phone:
    Asterisk puts the connected line, the callee, in From).
    """
    by_cid: dict[str, dict] = {}
    for m in messages:
        cid = (m.header("Call-ID") or [""])[0]
        if m.direction == "received" and m.method == "INVITE" and cid not in by_cid:
            callee = _user(m.first_line) if callee_in == "uri" else _user((m.header("From") or [""])[0])
            by_cid[cid] = {"callee": callee, "invite": m.time}
        elif (m.direction == "sent" and m.status == 200 and cid in by_cid
              and "INVITE" in (m.header("CSeq") or [""])[0] and "ok" not in by_cid[cid]):
            by_cid[cid]["ok"] = m.time
    return {v["callee"]: v for v in by_cid.values()}


def uac_index(messages) -> dict[str, dict]:
    """callee → {"invite": first INVITE sent at}, for a UAC (phone) log."""
    out: dict[str, dict] = {}
    for m in messages:
        if m.direction == "sent" and m.method == "INVITE":
            callee = _user(m.first_line)
            out.setdefault(callee, {"invite": m.time})
    return out

