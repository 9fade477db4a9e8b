"""The modes of ``[dial] auto_answer`` (docs/configuration.md): the SIP header
each one adds to an agent's leg, so that a desk phone answers by itself.

Declared here, with the config that accepts them; the agent leg's
originate variables are built from the same table
(``calls/autoanswer.py``).
"""

from __future__ import annotations

from platforma_c2d.rules import is_extension

#: mode → (header name, value). The forms phones commonly honour:
#: ``call-info``: Polycom, Yealink, Grandstream, Snom and most softphones;
#: ``alert-info``: Cisco SPA / Linksys, Yealink, Fanvil ("intercom" ring);
#: ``answer-after``: Alert-Info with only the parameter (Grandstream, Aastra/Mitel).
AUTO_ANSWER_HEADERS: dict[str, tuple[str, str]] = {
    "call-info": ("Call-Info", "<sip:127.0.0.1>;answer-after=0"),
    "alert-info": ("Alert-Info", "<http://127.0.0.1>;info=alert-autoanswer;delay=0"),
    "answer-after": ("Alert-Info", ";answer-after=0"),
}
#: Every accepted value of ``[dial] auto_answer``: ``off`` or a header form.
AUTO_ANSWER_MODES = ("off", *AUTO_ANSWER_HEADERS)


def is_agent_mode(item: str) -> bool:
    """Whether ``item`` is an ``auto_answer_agents`` entry: ``EXTENSION:MODE``
    (``"1001:alert-info"``, ``"1002:off"``)."""
    agent, sep, mode = item.partition(":")
    return bool(sep) and is_extension(agent) and mode in AUTO_ANSWER_MODES
