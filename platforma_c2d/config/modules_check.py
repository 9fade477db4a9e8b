"""``check``: the Asterisk modules and CDR backends our configs need.

Asterisk 22 lists its modules over ARI (``GET /asterisk/modules``): a module
that is loaded is there with ``status`` "Running"; one that was tried and
declined (``cdr_custom`` with no mapping at start-up) is there as "Not
Running"; one that was never loaded (``noload``, not installed) is absent.
A ``core reload`` loads no module that is not running: after fixing its
config, ``module load NAME`` (or restart Asterisk). ``require`` lines only
count in the ``[modules]`` section of ``modules.conf`` (docs/operations.md).
"""

from __future__ import annotations

#: Modules without which no click-to-dial call works, and what each is for.
REQUIRED = {
    "res_pjsip.so": "the SIP channels of agents, browser phones and the trunk",
    "res_pjsip_session.so": "SIP calls",
    "res_pjsip_header_funcs.so": "PJSIP_HEADER(): reading the X-Platforma-* headers",
    "res_ari.so": "the REST interface the service drives calls with",
    "res_stasis.so": "the Stasis app",
    "app_stasis.so": "Stasis() in extensions.conf",
    "res_http_websocket.so": "the ARI event socket",
    "func_cdr.so": "CDR(call_ref) on every leg",
    "cdr": "the CDR engine (cdr.conf)",
}
#: Needed by one way in only: a missing one is a warning.
OPTIONAL = {
    "res_agi.so": "the FastAGI path (context c2d-agi, platforma-c2d agi)",
}
#: The backends that write the call_ref column (SPEC §5); at least one must run.
CDR_BACKENDS = {
    "cdr_custom.so": "cdr_custom.conf (CSV)",
    "cdr_adaptive_odbc.so": "cdr_adaptive_odbc.conf (SQL)",
}


def _state(modules: dict[str, str], name: str) -> str:
    """``running``, ``declined`` (listed, not running) or ``missing``."""
    status = modules.get(name)
    if status is None:
        return "missing"
    return "running" if status.lower() == "running" else "declined"


def _why(state: str, name: str) -> str:
    if state == "missing":
        return (f"{name} is not loaded (noload in modules.conf, or not installed): "
                f"'module load {name}' or add 'load = {name}' to the [modules] section of "
                "modules.conf and restart Asterisk")
    return (f"{name} refused to load (its config was missing or empty when Asterisk "
            f"started; a reload does not load it): fix the config, then 'module load {name}' "
            "or restart Asterisk")


def check_modules(modules: list[dict]) -> list[tuple[str, str]]:
    """Judge the module list of ``GET /ari/asterisk/modules``.

    ``modules``: the JSON list (objects with ``name`` and ``status``).
    Returns ``(level, line)`` pairs, level ``"ok"``, ``"WARN"`` or
    ``"FAIL"``: FAIL for a required module not running and for no CDR
    backend running (no call_ref column would be written), WARN for a
    module of one way in only, and for a configured CDR backend that is
    not running while another one is.
    """
    by_name = {m.get("name", ""): str(m.get("status", "")) for m in modules}
    out: list[tuple[str, str]] = []
    for table, level in ((REQUIRED, "FAIL"), (OPTIONAL, "WARN")):
        for name, use in table.items():
            state = _state(by_name, name)
            if state != "running":
                out.append((level, f"modules: {_why(state, name)}; needed for {use}"))
    states = {name: _state(by_name, name) for name in CDR_BACKENDS}
    running = [name for name, state in states.items() if state == "running"]
    if not running:
        out.append(("FAIL", "cdr: no CDR backend writes the call_ref column: "
                    + "; ".join(_why(state, name) for name, state in states.items())))
    else:
        out.append(("ok", "cdr: backend running: " + ", ".join(
            f"{name[:-3]} ({CDR_BACKENDS[name]})" for name in running)))
        for name, state in states.items():
            if state == "declined":
                out.append(("WARN", f"cdr: {_why(state, name)}"))
    if not any(level == "FAIL" for level, _ in out):
        out.append(("ok", f"modules: the {len(REQUIRED)} modules Click2Dial needs are running"))
    return out


def check_hep(modules: list[dict], hep_listen: str) -> list[tuple[str, str]]:
    """Judge Asterisk's HEP capture against ``[trunk] hep_listen`` (SPEC §3.8).

    ``modules``: as for :func:`check_modules`; ``hep_listen``: the config
    value ("" = off: nothing to judge). Returns ``(level, line)`` pairs: ok
    when ``res_hep_pjsip.so`` runs, WARN when it does not (the carrier's
    ``Retry-After`` is then never read; a 503 holds the trunk for ``[trunk]
    hold_after_503_s``). Whether hep.conf's ``capture_address`` is this
    address is not visible over ARI."""
    if not hep_listen:
        return []
    by_name = {m.get("name", ""): str(m.get("status", "")) for m in modules}
    state = _state(by_name, "res_hep_pjsip.so")
    if state == "running":
        return [("ok", f"trunk: Asterisk's SIP capture (res_hep_pjsip) runs; the carrier's Retry-After "
                       f"is read on {hep_listen} (hep.conf capture_address must be that address)")]
    return [("WARN", f"trunk: [trunk] hep_listen is {hep_listen} but res_hep_pjsip.so does not run "
                     "(hep.conf: enabled = yes and capture_address = that address, then "
                     "'module reload res_hep.so' and 'module load res_hep_pjsip.so'): a carrier's 503 "
                     "holds the trunk for [trunk] hold_after_503_s")]
