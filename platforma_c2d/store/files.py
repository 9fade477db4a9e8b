"""The SQLite journal's files, never readable by other users (docs/security.md).

The journal holds every call's numbers and call_refs. Under systemd the
unit's ``UMask`` keeps them private; started any other way (a shell with
umask 022, a container), SQLite would create them world-readable.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The database file and the files SQLite keeps beside it in WAL mode.
SIDE_FILES = ("", "-wal", "-shm", "-journal")


def prepare_sqlite_file(database: str) -> None:
    """Make ``database``'s directory (mode 0750 when created) and file (mode
    0600 when created), and take every permission of other users off the
    file and its ``-wal`` / ``-shm`` / ``-journal`` files if they exist.
    SQLite creates those side files with the database file's mode. Raises
    ``OSError`` when the directory or file cannot be made."""
    path = Path(database)
    if not path.parent.exists():
        path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for suffix in SIDE_FILES:
        side = Path(str(path) + suffix)
        try:
            mode = side.stat().st_mode
            if mode & 0o007:
                side.chmod(mode & 0o770)
        except FileNotFoundError:
            continue
