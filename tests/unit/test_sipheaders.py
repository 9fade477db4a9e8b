"""How a header read through Asterisk is taken (SPEC §4): the answers below are
those Asterisk 22 gives (tests/integration/test_long_headers.py sends them)."""

import pytest

from platforma_c2d.calls.sipheaders import functions, judge

REF = "X-Platforma-Call-Ref"
EVERY = "Via,From,To,X-Platforma-Call-Ref,Content-Length"


def test_the_reads_are_the_copies_and_the_names():
    assert functions(REF) == (f"PJSIP_HEADER(read,{REF})", f"PJSIP_HEADER(read,{REF},2)",
                              f"PJSIP_HEADERS({REF})")


@pytest.mark.parametrize("first,second,listed,every,expected", [
    ("ord-42", None, REF, EVERY, ("ord-42", None)),
    ("", None, REF, EVERY, (None, None)),                               # empty: not given
    (None, None, REF, EVERY, (None, None)),                             # empty, over AGI
    (None, None, None, "Via,From,To", (None, None)),                    # absent
    (None, None, None, None, (None, f"{REF} could not be read whole (over 4,095 bytes)")),
    ("a", "b", f"{REF},{REF}", EVERY, (None, f"{REF} given more than once")),
    ("a", None, f"{REF},{REF.lower()}", EVERY, (None, f"{REF} given more than once")),
    ("a", None, None, None, (None, f"{REF} given more than once")),     # long second copy
    ("a", None, f"{REF}", None, ("a", None)),                           # another header is long
])
def test_judge(first, second, listed, every, expected):
    assert judge(REF, first, second, listed, every) == expected
