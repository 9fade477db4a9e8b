"""Transfers by the agents' phones (``allow_transfer=yes``, Asterisk's default).

What Asterisk does when a phone of a click-to-dial call transfers it, and
what the service makes of it (docs/api.md, "Transfers"):

* a browser or desk phone whose call is in the app's bridge (a header call):
  a blind transfer (REFER) puts a Local channel to the transfer target in
  the phone's place in the bridge; it enters the app with ``StasisStart``
  ``replace_channel`` = the phone's channel. That channel takes the agent
  leg's place (``CallEngine.on_leg_replaced``): the call goes on with the
  target and ends when either side hangs up;
* a REST call's agent phone is in the ``Dial()`` bridge of the agent leg's
  dialplan half (ADR 0014): the transfer sends that half to the target in
  the phone's dialplan context; the service sees no change;
* either way, a target that the phone's context hands to Click2Dial itself
  (a customer's number) would come back into the app as a call of its own:
  it is refused, without a journal row, and the call ends.
"""

from __future__ import annotations

from platforma_c2d.ari.client import AriClient, AriError, AriUnavailable

#: The variables Asterisk sets on the channel a transfer creates: the
#: transferer's channel name (main/bridge.c; a Local channel's ``;2`` gets
#: its ``;1``'s variables). A transfer sets one of them.
TRANSFER_VARIABLES = ("BLINDTRANSFER", "ATTENDEDTRANSFER")
#: Both read in one request: ``EVAL()`` substitutes them, an unset one as
#: ``""`` (``GET /channels/{id}/variables`` of the two would answer 404 as a
#: whole whenever one is unset, which is always).
TRANSFERER = "EVAL(%s)" % "".join("${%s}" % name for name in TRANSFER_VARIABLES)


async def transfer_of(ari: AriClient, channel_id: str) -> str:
    """The transferer's channel name when ``channel_id`` was created by a transfer
    (its ``BLINDTRANSFER`` or ``ATTENDEDTRANSFER``), else ``""``: one
    ``GET /channels/{id}/variable`` of ``TRANSFERER``. Never raises."""
    try:
        return await ari.get_variable(channel_id, TRANSFERER) or ""
    except (AriError, AriUnavailable):
        return ""
