"""Splitting one pytest pass into shards that run side by side.

``scripts/test.sh`` runs the whole suite as several pytest processes at once,
each in a network namespace and bench root of its own
(``scripts/test-isolated.sh``); most of a test's time is spent waiting on SIP
timers, so two cores serve four of them. ``C2D_SHARD=k/n`` makes a process run
shard ``k`` (1-based) of ``n``: whole test files, so that a file's module
fixtures and test order stay as written, given to the shards by their
measured duration (``tests/shard-weights.json``, seconds per file), longest
first, each to the shard with the least so far. Every shard of a pass
collects the same items and computes the same assignment, so each file runs in
exactly one shard. The weights hold a table per pass, picked as the bench
is: ``admin`` (``C2D_BENCH_CONFIGS=admin``), ``postgresql``
(``C2D_BENCH_STORE=postgresql``), else ``main``. ``C2D_SHARD_HEAD=PASS``:
shard 1 also runs pass ``PASS`` first, so it starts with that table's total
already on it. ``C2D_DURATIONS_OUT=PATH`` writes this process's seconds per
file there at the end, to refresh the weights (docs/decisions/0023).

The hooks are imported by ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent.parent / "tests" / "shard-weights.json"
# A file the weights do not name yet: seconds per test, by the kind of test.
UNKNOWN_PER_TEST = {"unit": 0.05, "integration": 8.0, "browser": 15.0}


def parse_shard(text: str) -> tuple[int, int]:
    """``"k/n"`` → ``(k, n)`` with ``1 <= k <= n``.

    Raises ValueError with the reason on anything else."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"C2D_SHARD={text!r}: expected k/n, e.g. 1/4") from None
    if not 1 <= k <= n:
        raise ValueError(f"C2D_SHARD={text!r}: k must be between 1 and n")
    return k, n


def file_weight(path: str, tests: int, weights: dict[str, float]) -> float:
    """Expected seconds of test file ``path`` holding ``tests`` tests: its
    measured seconds, else ``tests`` times a guess by its directory."""
    if path in weights:
        return float(weights[path])
    kind = next((k for k in UNKNOWN_PER_TEST if f"tests/{k}/" in path), "integration")
    return tests * UNKNOWN_PER_TEST[kind]


def pass_name(env: dict[str, str]) -> str:
    """The weights table of the pass the environment ``env`` runs:
    ``admin``, ``postgresql`` or ``main``."""
    if env.get("C2D_BENCH_CONFIGS") == "admin":
        return "admin"
    return "postgresql" if env.get("C2D_BENCH_STORE") == "postgresql" else "main"


def assign(costs: dict[str, float], n: int, head: float = 0.0) -> list[set[str]]:
    """Files to ``n`` shards, longest first, each to the shard least loaded so
    far (ties: the lower shard; files of equal cost by name, so that the
    result depends on nothing but its arguments). ``head``: seconds shard 1
    has to run besides (another pass first). Returns one set per shard."""
    shards: list[set[str]] = [set() for _ in range(n)]
    loads = [head] + [0.0] * (n - 1)
    for path in sorted(costs, key=lambda p: (-costs[p], p)):
        i = min(range(n), key=lambda j: (loads[j], j))
        shards[i].add(path)
        loads[i] += costs[path]
    return shards


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config, items) -> None:
    """Keep only this shard's files when ``C2D_SHARD`` is set."""
    text = os.environ.get("C2D_SHARD", "")
    if not text:
        return
    k, n = parse_shard(text)
    tables = json.loads(WEIGHTS.read_text()) if WEIGHTS.exists() else {}
    weights = tables.get(pass_name(dict(os.environ)), {})
    head = sum(tables.get(os.environ.get("C2D_SHARD_HEAD", ""), {}).values())
    counts: dict[str, int] = defaultdict(int)
    for item in items:
        counts[_file_of(item.nodeid)] += 1
    mine = assign({p: file_weight(p, c, weights) for p, c in counts.items()}, n, head)[k - 1]
    kept = [item for item in items if _file_of(item.nodeid) in mine]
    dropped = [item for item in items if _file_of(item.nodeid) not in mine]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept


_seconds: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report) -> None:
    """Add each phase's duration (set-up, call, teardown) to its file's total."""
    _seconds[_file_of(report.nodeid)] += report.duration


def pytest_sessionfinish(session) -> None:
    """Write the seconds per file to ``C2D_DURATIONS_OUT`` when it is set."""
    out = os.environ.get("C2D_DURATIONS_OUT")
    if out and _seconds:
        Path(out).write_text(json.dumps({p: round(s, 1) for p, s in sorted(_seconds.items())}, indent=1) + "\n")
