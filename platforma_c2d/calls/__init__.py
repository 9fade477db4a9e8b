"""The call: model and states (``model``), hangup causes (``causes``), the
state machine driven by Stasis events (``engine``, ``stasis``), and the
service the HTTP layer calls (``service``)."""
