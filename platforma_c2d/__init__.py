"""platforma_c2d — Click2Dial for the Asterisk PBX.

An agent is connected to a customer (the callee) through Asterisk with a
chosen caller ID (CLID), and the customer reference (call_ref) lands in the
CDRs. Ways in: the REST API (``http``), browser phones whose INVITE carries
X-Platforma headers (the Stasis app in ``calls``), and FastAGI (``agi``).
"""

__version__ = "0.1.0"
