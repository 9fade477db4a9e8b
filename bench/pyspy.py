"""Where the service's CPU went, from the py-spy profile of a run
(``--profile``): samples by part of the service, by thread, by function.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path


PROFILE_PARTS = (   # first match wins, checked on the whole stack of a sample
    ("httpcore current_async_library(): a failed 'import sniffio' on every request",
     ("current_async_library",)),
    ("ARI REST client: the HTTP library (httpx or aiohttp) and its helpers",
     ("httpx/", "httpcore/", "h11/", "anyio/", "aiohttp/", "yarl/", "multidict/")),
    ("journal: SQLite commit (fsync)", ("do_commit",)),
    ("journal: SQLAlchemy statements and connections", ("sqlalchemy/", "journal.py")),
    ("logging", ("logging/", "logs.py")),
    ("ARI event socket: websockets + JSON", ("websockets/", "json/")),
    ("HTTP API: waitress + Flask", ("waitress/", "flask/", "werkzeug/")),
    ("event loop: epoll (polling, or waiting counted as active)", ("EpollSelector.select",)),
)


def profile_parts(path: Path) -> Counter:
    """Samples of a py-spy collapsed-stack file counted by part of the service."""
    parts: Counter = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        for name, needles in PROFILE_PARTS:
            if any(n in stack for n in needles):
                parts[name] += int(count)
                break
        else:
            parts["the rest: engine, Stasis app, asyncio, threads"] += int(count)
    return parts


def profile_summary(path: Path, top: int = 25) -> str:
    """Where the service's CPU went: per thread, and the functions with the most samples
    (inclusive: on the stack; self: at the top), from py-spy's collapsed stacks."""
    threads, incl, own, total = Counter(), Counter(), Counter(), 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        threads[frames[0]] += n
        seen = set()
        for f in frames[1:]:
            name = re.sub(r"\s*\((?:.*/)?(?:site-packages/|python3\.\d+/|platforma_c2d/)?([^:()]+):\d+\)", r" (\1)", f)
            if name not in seen:
                incl[name] += n
                seen.add(name)
        if len(frames) > 1:
            own[re.sub(r":\d+\)", ")", frames[-1])] += n
    if not total:
        return "profile: no samples"
    out = [f"profile: {total} samples at 100 Hz (on-CPU), {path}", "", "by part of the service:"]
    out += [f"  {n / total:6.1%}  {part}" for part, n in profile_parts(path).most_common()]
    out += ["", "by thread:"]
    out += [f"  {n / total:6.1%}  {t}" for t, n in threads.most_common(6)]
    out += ["", "inclusive (on the stack):"]
    out += [f"  {n / total:6.1%}  {f}" for f, n in incl.most_common(top)]
    out += ["", "self (at the top of the stack):"]
    out += [f"  {n / total:6.1%}  {f}" for f, n in own.most_common(15)]
    return "\n".join(out)

