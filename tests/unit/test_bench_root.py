"""The bench root of one's own (``C2D_BENCH_ROOT``): a copy of the shared
root, made without the network, so the demo, the benchmark and the tests run
in a network namespace as docs/performance.md and docs/webrtc.md say."""

from __future__ import annotations

import pytest

from testbed import root as bench_root


def _fake_root(path):
    (path / "etc/asterisk.dist").mkdir(parents=True)
    (path / "usr/sbin").mkdir(parents=True)
    (path / "usr/sbin/asterisk").write_text("Asterisk 22 stand-in\n")
    (path / "proc").mkdir()
    (path / "proc/mounted").write_text("not copied\n")
    (path / bench_root.MARKER).write_text(bench_root.RECIPE + "\n")


@pytest.fixture
def roots(tmp_path, monkeypatch):
    shared, mine = tmp_path / "shared", tmp_path / "mine"
    _fake_root(shared)
    monkeypatch.setattr(bench_root, "DEFAULT_ROOT", shared)
    monkeypatch.setenv("C2D_BENCH_ROOT", str(mine))
    # Valid = the marker and the saved configs (running Asterisk needs a real root).
    monkeypatch.setattr(bench_root, "root_is_valid", lambda r: (r / bench_root.MARKER).is_file()
                        and (r / "etc/asterisk.dist").is_dir())

    def no_mirror():
        raise RuntimeError("no mirror reachable (a network namespace)")

    monkeypatch.setattr(bench_root, "debian_mirror", no_mirror)
    return shared, mine


def test_a_root_of_ones_own_is_copied_from_the_shared_root_without_the_network(roots):
    shared, mine = roots
    assert bench_root.ensure_root(log=lambda _: None) == mine
    assert (mine / "usr/sbin/asterisk").read_text() == "Asterisk 22 stand-in\n"
    assert (mine / "proc").is_dir() and not (mine / "proc/mounted").exists()
    assert not mine.with_name("mine.tmp").exists()


def test_without_a_valid_shared_root_it_is_still_built(roots):
    shared, _mine = roots
    (shared / bench_root.MARKER).unlink()
    with pytest.raises(RuntimeError, match="no mirror"):
        bench_root.ensure_root(log=lambda _: None)
