"""The platforma_c2d benchmark: call set-up latency, capacity and the
service's CPU and memory, measured against bare Asterisk (issue 8).

Run it with ``bash scripts/bench.sh`` (or ``python -m bench.run``); the
method and the latest figures are in ``docs/performance.md``.
"""
