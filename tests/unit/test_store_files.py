"""The journal's SQLite files are private to the service's user, whatever the umask."""

from __future__ import annotations

import os
import stat

from platforma_c2d.calls.model import Call, Origin
from platforma_c2d.store.journal import Journal


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_journal_and_its_wal_are_not_readable_by_others(tmp_path):
    old = os.umask(0o022)                   # a shell's usual umask: files would be 0644
    try:
        db = tmp_path / "var" / "calls.sqlite3"
        journal = Journal(f"sqlite:///{db}")
        journal.record(Call(id="a" * 32, origin=Origin.REST, agent="1001", callee="0215550100",
                            outbound_id="", clid="0115550000", call_ref="r"), "test")
        files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
        assert all(f.exists() for f in files)
        assert [mode(f) & 0o077 for f in files] == [0, 0, 0], [oct(mode(f)) for f in files]
        assert mode(db.parent) & 0o007 == 0
        journal.close()
    finally:
        os.umask(old)


def test_an_existing_world_readable_journal_loses_the_others_permissions(tmp_path):
    db = tmp_path / "calls.sqlite3"
    Journal(f"sqlite:///{db}").close()
    db.chmod(0o644)
    Journal(f"sqlite:///{db}").close()
    assert mode(db) == 0o640
