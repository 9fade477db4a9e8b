"""The endurance verdict of the benchmark (bench/endurance.py): flat or not, and why."""

from __future__ import annotations

from bench.endurance import judge


def _sample(svc_fds, svc_threads, svc_rss, ast_fds=100, ast_threads=60):
    return {"service": {"fds": svc_fds, "threads": svc_threads, "rss_kb": svc_rss},
            "asterisk": {"fds": ast_fds, "threads": ast_threads, "rss_kb": 50000}}


def test_resources_back_to_their_level_after_warm_up_are_flat():
    samples = [_sample(20, 10, 40000), _sample(31, 14, 52000), _sample(32, 14, 52300), _sample(30, 13, 52500)]
    assert judge(samples) == {"flat": True, "why": ""}


def test_a_descriptor_or_thread_per_chunk_is_not_flat_and_says_which():
    samples = [_sample(20, 10, 40000), _sample(31, 14, 52000), _sample(40, 14, 52000, ast_fds=140)]
    verdict = judge(samples)
    assert verdict["flat"] is False
    assert "service fds 31 → 40" in verdict["why"] and "asterisk fds 100 → 140" in verdict["why"]


def test_memory_growing_over_the_run_is_not_flat():
    verdict = judge([_sample(20, 10, 40000), _sample(31, 14, 50000), _sample(31, 14, 52000)])
    assert verdict["flat"] is False and "service RSS" in verdict["why"]


def test_a_run_too_short_to_judge_says_so():
    assert judge([_sample(1, 1, 1), _sample(1, 1, 1)])["flat"] is None
