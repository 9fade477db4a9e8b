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


class InviteHeaders:
    """Answers reads of an INVITE's headers as Asterisk 22 does (the rules above:
    a copy over 4,095 bytes cannot be read; a listing fails when nothing matches
    or a matching copy cannot be printed whole), through ``get_variable`` (one
    function; None when it fails) and ``get_variables`` (several; None when any
    fails). Counts the requests."""

    LIMIT = 4095

    def __init__(self, headers: list[tuple[str, str]]):
        self.headers, self.requests = headers, 0

    def _read(self, fn: str) -> str | None:
        inner = fn[fn.index("(") + 1:-1]
        if fn.startswith("PJSIP_HEADERS("):
            found = [(n, v) for n, v in self.headers if n.lower().startswith(inner.lower())]
            if not found or any(len(v) > self.LIMIT for _n, v in found):
                return None
            return ",".join(n for n, _v in found)
        _, name, *nth = inner.split(",")
        copies = [v for n, v in self.headers if n.lower() == name.lower()]
        k = int(nth[0]) if nth else 1
        if len(copies) < k or len(copies[k - 1]) > self.LIMIT:
            return None
        return copies[k - 1]

    async def get_variable(self, channel_id: str, fn: str) -> str | None:
        self.requests += 1
        return self._read(fn)

    async def get_variables(self, channel_id: str, fns: list[str]) -> dict[str, str] | None:
        self.requests += 1
        values = {fn: self._read(fn) for fn in fns}
        return None if any(v is None for v in values.values()) else values


OUT = "X-Platforma-Outbound-ID"
LONG = "a" * 5000


@pytest.mark.parametrize("headers,requests", [
    ([(OUT, "0215550199"), (REF, "ord-42")], 2),                  # the usual call: one round trip
    ([(OUT, "0215550199")], 2 + 4),                               # no call ref
    ([], 2 + 7),
    ([(OUT, "0215550199"), (REF, "ord-42"), (REF.lower(), "x")], 2),   # twice: the listing says so
    ([(OUT, "0215550199"), (REF, LONG)], 2 + 4),
    ([(OUT, "0215550199"), (REF, "ord-42"), (REF, LONG)], 2 + 4),
    ([(OUT, "0215550199"), (REF, "ord-42"), ("X-Other", LONG)], 2),
    ([(OUT, ""), (REF, "ord-42")], 2),
    ([(OUT + "-Extra", "1"), (REF, "ord-42")], 2 + 4),
])
def test_read_asks_less_and_decides_as_every_read_one_by_one(headers, requests):
    import asyncio

    from platforma_c2d.calls.sipheaders import ALL_HEADERS, read

    ari = InviteHeaders(headers)
    got = asyncio.run(read(ari, "chan", (OUT, REF)))
    every = ari._read(ALL_HEADERS)
    expected = [judge(name, *(ari._read(fn) for fn in functions(name)), every) for name in (OUT, REF)]
    assert got == expected
    assert ari.requests == requests
