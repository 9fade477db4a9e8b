"""The benchmark's memory verdict (issue 8: "memory flat over a long run")."""

from bench.stats import memory_trend


def _idle(*points):
    return [{"after": label, "calls": calls, "rss_kb": rss} for label, calls, rss in points]


def test_warm_up_growth_before_the_soak_is_reported_not_judged():
    idle = _idle(("rate 20", 200, 60_000), ("rate 40", 600, 64_000), ("215 at once", 1_000, 69_000),
                 ("soak 1/2", 1_500, 70_000), ("soak 2/2", 2_000, 70_100))
    out = memory_trend(idle)
    assert out["memory_flat"] is True
    assert out["idle_rss_growth_kb"] == 6_100          # after "rate 40" → end, warm-up included
    assert out["soak_rss_growth_kb"] == 100 and out["soak_rss_over_calls"] == 500
    assert out["soak_rss_bytes_per_call"] == 205


def test_a_leak_of_a_kilobyte_per_call_is_growing():
    idle = _idle(("rate 20", 200, 60_000), ("soak 1/2", 700, 70_000), ("soak 2/2", 1_200, 70_500))
    out = memory_trend(idle)
    assert out["memory_flat"] is False
    assert out["soak_rss_bytes_per_call"] == 1024


def test_no_soak_no_verdict():
    idle = _idle(("rate 20", 200, 60_000), ("rate 40", 600, 64_000), ("latency", 900, 65_000))
    out = memory_trend(idle)
    assert out["memory_flat"] is None and "soak_rss_growth_kb" not in out
    assert out["idle_rss_growth_kb"] == 1_000
