"""The FastAGI server (SPEC section 6), for PBXs that keep call routing in
their dialplan.

``platforma-c2d agi`` listens for FastAGI connections from Asterisk
(``AGI(agi://127.0.0.1:4573/click2dial)``), applies the Click2Dial input
rules and policy to the call that runs the AGI, journals it with
``origin: agi`` and answers with channel variables (``C2D_STATUS``,
``C2D_CLID``, ``C2D_CALL_REF``, the caller ID and ``CDR(call_ref)``); the
dialplan then dials the trunk itself. See docs/agi.md.

Modules, one job each:

* ``channel``  the AGI protocol on one TCP connection (pyst2's ``AGI`` class
  over a bounded, timed line reader);
* ``scripts``  what the ``click2dial`` and ``click2dial-hangup`` scripts do
  with a connection: read, check, journal, answer;
* ``server``   the bounded threaded TCP server and ``serve_agi(cfg)``.
"""
