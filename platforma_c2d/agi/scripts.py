"""What the FastAGI scripts do with one session (SPEC sections 1, 5, 6, 9).

Two scripts, chosen by the path of the AGI URL:

``click2dial``
    run by the dialplan before it dials the trunk. Reads the agent (the
    calling PJSIP endpoint), the callee (``${EXTEN}``) and the channel's
    unique id from the channel itself (:func:`~platforma_c2d.agi.trust.read_identity`,
    never from the environment), the outbound_id and
    call_ref (channel variables ``C2D_OUTBOUND_ID`` / ``C2D_CALL_REF`` when
    set, else the ``X-Platforma-Outbound-ID`` / ``X-Platforma-Call-Ref``
    SIP headers), applies the input rules (:mod:`platforma_c2d.rules`) and
    the policy, journals the call (``origin: agi``) and answers with
    channel variables; ``C2D_STATUS`` is written last. The dialplan dials
    ``C2D_CALLEE``, the number checked here, never ``${EXTEN}``.

``click2dial-hangup``
    run from the channel's hangup handler. Ends the journalled call with
    the reason the dialplan's ``Dial()`` left in ``DIALSTATUS``.

Both first check the session's shared secret (``[agi] secret``,
:func:`~platforma_c2d.agi.trust.check_secret`).

Journal states of an AGI call: an accepted call is written as
``dialing_callee`` (the agent's phone is already the calling channel; the
dialplan dials the callee next), then ``ended`` with its reason by the
hangup script. ``connected`` is never written: the server does not follow
the call while it is up; ``answered_at`` (from ``ANSWEREDTIME``) and
``duration_s`` are filled in at the end. A refused call is written once,
``ended`` / ``rejected``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import timedelta

from platforma_c2d import rules
from platforma_c2d.agi.limits import check_agi_limits
from platforma_c2d.agi.trust import check_secret, read_identity
from platforma_c2d.calls import sipheaders
from platforma_c2d.calls.errors import C2DError
from platforma_c2d.calls.dialstatus import final_outcome
from platforma_c2d.calls.model import Call, Leg, Origin, Reason, State, new_call_id
from platforma_c2d.calls.policy import Policy
from platforma_c2d.calls.sipheaders import HEADER_CALL_REF, HEADER_OUTBOUND_ID, agent_from_channel_name
from platforma_c2d.clid.picker import ClidPicker
from platforma_c2d.config import DialConfig, LimitsConfig
from platforma_c2d.rules import journal_text
from platforma_c2d.store.journal import Journal

log = logging.getLogger("platforma_c2d.agi")

SCRIPT_CHECK = "click2dial"
SCRIPT_HANGUP = "click2dial-hangup"

# C2D_STATUS values besides the C2DError ids (clid-not-allowed, ...).
STATUS_OK = "OK"
STATUS_INVALID_CALLEE = "invalid-callee"
STATUS_INVALID_REQUEST = "invalid-request"
STATUS_UNKNOWN_SCRIPT = "unknown-script"
STATUS_INTERNAL_ERROR = "internal-error"

_CALL_ID = re.compile(r"[0-9a-f]{32}")
_FIELD_NAME = re.compile(r"[a-z_]{1,20}")


# --------------------------------------------------------------------------
# Pure parts: no I/O.
# --------------------------------------------------------------------------


def script_name(env: dict[str, str]) -> str:
    """The script asked for in a FastAGI environment: ``agi_network_script``
    (the URL path, e.g. ``"click2dial"``) without leading ``/`` and without
    a ``?query``; ``""`` when absent."""
    path = env.get("agi_network_script", "")
    return path.split("?", 1)[0].strip("/")


def status_for(exc: Exception) -> tuple[str, dict[str, str]]:
    """The ``C2D_STATUS`` of a refusal and the refused fields with why.

    ``exc``: a :class:`rules.ValidationError` / :class:`rules.RuleError`
    (``invalid-callee`` when the callee is among the bad fields, which the
    sample dialplan answers with 484; else ``invalid-request``) or a
    :class:`C2DError` (its kebab-case ``error`` id, e.g.
    ``clid-not-allowed``, ``destination-not-allowed``).
    """
    if isinstance(exc, rules.ValidationError):
        fields = dict(exc.errors)
    elif isinstance(exc, rules.RuleError):
        fields = {exc.field: exc.message}
    elif isinstance(exc, C2DError):
        return exc.error, {str(k): str(v) for k, v in exc.fields.items()}
    else:
        raise TypeError(f"not a refusal: {type(exc).__name__}")
    return (STATUS_INVALID_CALLEE if "callee" in fields else STATUS_INVALID_REQUEST), fields


def answered_seconds(answered_time_ms: str, answered_time: str) -> float | None:
    """Talk time in seconds from Dial()'s ``ANSWEREDTIME_MS`` (preferred)
    or ``ANSWEREDTIME`` (whole seconds); ``None`` when neither is a number."""
    for text, scale in ((answered_time_ms, 1000.0), (answered_time, 1.0)):
        if re.fullmatch(r"[0-9]{1,9}", text or ""):
            return int(text) / scale
    return None


# --------------------------------------------------------------------------
# The scripts.
# --------------------------------------------------------------------------


class AgiScripts:
    """The scripts served by ``platforma-c2d agi``.

    ``journal``: where calls are written; ``picker``: chooses each call's
    CLID (default, or drawn from the agent's pool, SPEC §12); ``policy``:
    allowed CLIDs and destinations; ``dial``: ``[dial]``, whose callee ring timeout and maximum
    call duration are handed to the dialplan's ``Dial()`` (defaults when
    ``None``); ``secret``: ``[agi] secret``, the shared secret the peer of
    every session must hold in AstDB ``c2d/agi_secret`` (``""``: none asked);
    ``follow``: called with an accepted call's channel id (UNIQUEID) before
    ``C2D_STATUS=OK``, so that the service follows the channel to its end
    (:class:`~platforma_c2d.agi.follow.ChannelFollow.subscribe`; ``None``:
    only the hangup script ends calls); ``limits``: ``[limits]``, whose
    ``max_active_calls`` an AGI call obeys like any other (``None``: none;
    the per-agent limit is the dialplan's, :mod:`platforma_c2d.agi.limits`). Methods take an :class:`~platforma_c2d.agi.channel.AgiChannel` and are
    safe to call from many threads at once.
    """

    def __init__(self, journal: Journal, picker: ClidPicker, policy: Policy,
                 dial: DialConfig | None = None, secret: str = "",
                 follow: Callable[[str], bool] | None = None, limits: LimitsConfig | None = None):
        self.journal, self.picker, self.policy = journal, picker, policy
        self.limits = limits
        self.follow = follow
        self.dial = dial or DialConfig()
        self.secret = secret

    def handle(self, agi, on_trusted: Callable[[], None] | None = None) -> str:
        """Run the script the session asks for; return the ``C2D_STATUS``
        set (``""`` for the hangup script). An unknown script only gets
        ``C2D_STATUS=unknown-script`` (nothing is journalled). Raises
        :class:`~platforma_c2d.agi.trust.AgiRefused` for a session without
        the secret, or whose channel and environment disagree.
        ``on_trusted``: called once the peer has shown the secret, before
        anything else is asked (the server moves the session out of its
        unauthenticated ones); what it raises ends the session."""
        check_secret(agi, self.secret)
        if on_trusted is not None:
            on_trusted()
        name = script_name(agi.env)
        if name == SCRIPT_CHECK:
            return self.check_call(agi)
        if name == SCRIPT_HANGUP:
            self.end_call(agi)
            return ""
        log.warning("AGI script %s is not served (only %s, %s)",
                    journal_text(name, 40), SCRIPT_CHECK, SCRIPT_HANGUP)
        agi.set("C2D_STATUS", STATUS_UNKNOWN_SCRIPT)
        return STATUS_UNKNOWN_SCRIPT

    # ------------------------------------------------------------------
    def _read_field(self, agi, pjsip: bool, variable: str, header: str,
                    every: list) -> tuple[str | None, str | None]:
        """A channel variable when set, else the SIP header (PJSIP only).

        Returns ``(value, problem)``: ``value`` is ``None`` when neither is
        given (an empty value is not given), read whole (``get_full``: past
        ``GET VARIABLE``'s 1,024 bytes); ``problem`` is None or why the
        header is refused, like on the WebRTC path: given twice (a proxy
        that checked one copy must not be bypassed with the other), or
        present but longer than Asterisk reads (4,095 bytes), never taken
        as absent (SPEC §4, :func:`platforma_c2d.calls.sipheaders.judge`).
        ``every``: a one-item cache of ``PJSIP_HEADERS()``, read once.
        """
        value = agi.get_full(variable)
        if value or not pjsip:
            return value or None, None
        first, second, listed = (agi.get_full(fn) or None for fn in sipheaders.functions(header))
        if not every:
            every.append(agi.get_full(sipheaders.ALL_HEADERS) or None)
        return sipheaders.judge(header, first, second, listed, every[0])

    def check_call(self, agi) -> str:
        """The ``click2dial`` script; returns the ``C2D_STATUS`` it set.

        Accepted: sets ``C2D_CALL_ID``, ``C2D_CALLEE`` (the checked number:
        what the dialplan dials), ``C2D_CLID``, ``C2D_CALL_REF``,
        ``CALLERID(num)`` = the CLID, ``CALLERID(name)`` = ``""`` (so the
        trunk's From and P-Asserted-Identity carry only the CLID), the CDR
        variables ``call_ref``, ``c2d_call_id``, ``c2d_leg`` (``agent``),
        ``c2d_agent``, ``c2d_clid``, ``C2D_RING_TIMEOUT`` and
        ``C2D_MAX_DURATION_S`` (``[dial]`` callee_ring_timeout_s and
        max_call_duration_s, seconds, for ``Dial()``), then
        ``C2D_STATUS=OK``. Refused: sets
        ``C2D_CALL_ID``, ``C2D_ERROR_FIELDS`` (comma-separated field names)
        and ``C2D_STATUS`` = the error id. The call is journalled before
        any variable is set; when that fails, ``C2D_STATUS=internal-error``.
        A refused call's CDR still gets ``c2d_call_id`` and, when that field
        alone is valid, ``call_ref``.
        """
        ident = read_identity(agi, agi.env)
        pjsip = ident.tech == "PJSIP"
        agent = ident.endpoint or agent_from_channel_name(ident.name)
        callee = ident.exten
        every: list = []
        outbound_id, outbound_id_problem = self._read_field(agi, pjsip, "C2D_OUTBOUND_ID",
                                                            HEADER_OUTBOUND_ID, every)
        call_ref, call_ref_problem = self._read_field(agi, pjsip, "C2D_CALL_REF",
                                                      HEADER_CALL_REF, every)
        agi.check_in_step()

        call = Call(id=new_call_id(), origin=Origin.AGI, agent=journal_text(agent, 16),
                    callee=journal_text(callee, 16),
                    outbound_id=journal_text(outbound_id or "", 16), clid="",
                    call_ref=journal_text(call_ref or "", rules.CALL_REF_MAX),
                    state=State.DIALING_CALLEE)
        # The channel's ARI id: DELETE /click2dial/calls/{id} hangs it up.
        call.agent_leg = Leg("agent", ident.uniqueid, started=True, up=True)
        try:
            if outbound_id_problem or call_ref_problem:
                raise rules.ValidationError({name: problem for name, problem in (
                    ("outbound_id", outbound_id_problem), ("call_ref", call_ref_problem))
                    if problem})
            req = rules.validate_fields(agent=agent, callee=callee, outbound_id=outbound_id,
                                        call_ref=call_ref)
            self.policy.check(req, agent_dialled=False)   # the agent is the calling phone
            if self.limits is not None:
                check_agi_limits(self.journal.engine, self.limits)
            clid = self.picker.choose(req).clid
        except (rules.ValidationError, rules.RuleError, C2DError) as exc:
            return self._refuse(agi, call, exc, call_ref)

        call.agent, call.callee, call.outbound_id = req.agent, req.callee, req.outbound_id
        call.call_ref, call.clid = req.call_ref, clid
        if not self._record(agi, call, "accepted: the dialplan dials the callee"):
            return STATUS_INTERNAL_ERROR
        log.info("AGI call accepted: %s dials %s as %s", call.agent, call.callee, call.clid,
                 extra={"call_id": call.id, "call_ref": call.call_ref, "origin": "agi"})
        try:
            agi.set("C2D_CALL_ID", call.id)
        except Exception:
            # Not on the channel: the hangup handler cannot find the call,
            # and C2D_STATUS is not OK, so the dialplan does not dial it.
            call.end(Reason.FAILED)
            self._record(agi, call, "failed: could not answer the dialplan")
            raise
        # From here the hangup handler (C2D_CALL_ID), or else the service
        # following the channel, owns the end of the call.
        if self.follow is not None:
            self.follow(ident.uniqueid)
        for name, value in (
            ("C2D_CALLEE", call.callee),
            ("C2D_CLID", clid),
            ("C2D_CALL_REF", call.call_ref),
            ("CALLERID(num)", clid),
            ("CALLERID(name)", ""),
            ("CDR(call_ref)", call.call_ref),
            ("CDR(c2d_call_id)", call.id),
            ("CDR(c2d_leg)", "agent"),
            ("CDR(c2d_agent)", call.agent),
            ("CDR(c2d_clid)", clid),
            # [dial] for the dialplan's Dial(): ring timeout (s) and S() (s).
            ("C2D_RING_TIMEOUT", str(self.dial.callee_ring_timeout_s)),
            ("C2D_MAX_DURATION_S", str(self.dial.max_call_duration_s)),
            ("C2D_STATUS", STATUS_OK),
        ):
            agi.set(name, value)
        return STATUS_OK

    def _refuse(self, agi, call: Call, exc: Exception, call_ref: str | None) -> str:
        status, fields = status_for(exc)
        try:  # the CDR row of a refused call still carries a valid call_ref (SPEC §5) ...
            ref = rules.clean_call_ref(call_ref) if call_ref and "call_ref" not in fields else None
        except rules.RuleError:  # ... never a refused one (given twice, say)
            ref = None
        if ref is None:
            call.call_ref = ""
        names = sorted(f for f in fields if _FIELD_NAME.fullmatch(f))
        call.end(Reason.REJECTED)
        detail = (f"refused ({status}; fields {','.join(names)}): "
                  + "; ".join(f"{k}: {v}" for k, v in sorted(fields.items())))
        if not self._record(agi, call, detail):
            return STATUS_INTERNAL_ERROR
        log.warning("AGI call refused: %s (%s)", status, ", ".join(names),
                    extra={"call_id": call.id, "origin": "agi", "fields": names})
        agi.set("C2D_CALL_ID", call.id)
        agi.set("CDR(c2d_call_id)", call.id)
        if ref is not None:
            agi.set("CDR(call_ref)", ref)
        agi.set("C2D_ERROR_FIELDS", ",".join(names))
        agi.set("C2D_STATUS", status)
        return status

    def _record(self, agi, call: Call, detail: str) -> bool:
        """Journal the call; on failure tell the dialplan (internal-error)
        if the session still works, and return ``False``."""
        try:
            self.journal.record(call, detail)
        except Exception:  # any database error: the call must not go out unjournalled
            log.exception("cannot journal AGI call", extra={"call_id": call.id, "origin": "agi"})
            try:
                agi.set("C2D_STATUS", STATUS_INTERNAL_ERROR)
            except Exception:  # the session is gone too; the dialplan sees no status
                pass
            return False
        return True

    # ------------------------------------------------------------------
    def end_call(self, agi) -> Call | None:
        """The ``click2dial-hangup`` script: end the call named by the
        channel's ``C2D_CALL_ID`` with :func:`~platforma_c2d.calls.dialstatus.final_outcome`.

        Returns the ended call, or ``None`` when there is nothing to end (no
        or unknown ``C2D_CALL_ID``, not an AGI call, already ended: a
        refused call, or a handler run twice; a channel that is not the
        one journalled with the call). Sets no variable. A call
        cancelled through the API (its outcome noted in the journal) ends
        with that reason, ``cancelled``, and its talk time.
        """
        call_id = agi.get("C2D_CALL_ID")
        if not _CALL_ID.fullmatch(call_id):
            return None
        row = self.journal.get_row(call_id)
        if row is None or row["origin"] != Origin.AGI.value or row["state"] == State.ENDED.value:
            return None
        uniqueid = agi.get_full("UNIQUEID")
        if row.get("agent_channel") and row["agent_channel"] != uniqueid:
            log.warning("AGI hangup of a channel that is not the call's: call left as it is",
                        extra={"call_id": call_id, "origin": "agi"})
            return None
        dialstatus, cause = agi.get("DIALSTATUS"), agi.get("HANGUPCAUSE")
        talk_s = answered_seconds(agi.get("ANSWEREDTIME_MS"), agi.get("ANSWEREDTIME"))
        call = _call_from_row(row)
        reason, by, noted = final_outcome(row, dialstatus, cause, agi.get("CHANNEL(hangupsource)"),
                                          getattr(agi, "env", {}).get("agi_channel", ""))
        call.end(reason, by)
        if talk_s is not None and (reason is Reason.COMPLETED or (noted and dialstatus == "ANSWER")):
            call.answered_at = call.ended_at - timedelta(seconds=talk_s)
        if not self.journal.end_if_open(call, f"hangup: DIALSTATUS={journal_text(dialstatus, 16) or '-'} "
                                              f"HANGUPCAUSE={journal_text(cause, 4) or '-'}"):
            return None   # ended meanwhile by someone else (the service, after a cancel)
        log.info("AGI call ended: %s", reason.value,
                 extra={"call_id": call.id, "call_ref": call.call_ref, "origin": "agi"})
        return call


def _call_from_row(row: dict) -> Call:
    """A :class:`Call` from its journal row, with its agent leg (the AGI channel)."""
    call = Call.from_row(row)
    if row.get("agent_channel"):
        call.agent_leg = Leg("agent", row["agent_channel"], started=True, up=True)
    return call
