"""unixODBC and the PostgreSQL ODBC driver in the bench root, for ``cdr_adaptive_odbc``.

An additive step on top of the bench root (``root.ensure_root``): it installs
``unixodbc`` and ``odbc-postgresql`` into the root with the root's own
``apt-get`` and writes a marker of its own (``MARKER``), so the root's recipe
(``root.RECIPE``) and its marker stay as they are. Asterisk's ``res_odbc`` and
``cdr_adaptive_odbc`` modules come with ``asterisk-modules`` already.

``scripts/setup.sh`` runs it on the shared root and ``scripts/test-isolated.sh``
on a private copy (both have the network; the tests' namespace has not). The
test fixture only checks the marker (:func:`odbc_ready`) and says what to run
when it is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

PACKAGES = ("unixodbc", "odbc-postgresql")
RECIPE = ",".join(PACKAGES) + " v1"
MARKER = ".platforma-c2d-odbc"
#: The PostgreSQL ODBC driver (Unicode) inside the root, as Debian installs it.
DRIVER = "/usr/lib/x86_64-linux-gnu/odbc/psqlodbcw.so"


def odbc_ready(root: Path) -> bool:
    """True when ``root`` has the ODBC packages of the current recipe and the driver file."""
    marker = Path(root) / MARKER
    return (marker.is_file() and marker.read_text().strip() == RECIPE
            and (Path(root) / DRIVER.lstrip("/")).is_file())


def ensure_odbc(root: Path, log=print) -> None:
    """Install ``PACKAGES`` into ``root`` unless its marker says they are there.

    Idempotent. Tries the root's package lists first and refreshes them
    (``apt-get update``) only when that fails. Needs root and the Debian
    mirror. Raises ``RuntimeError`` with apt's output when it cannot install.
    """
    root = Path(root)
    if odbc_ready(root):
        return
    log(f"bench: installing {' '.join(PACKAGES)} into {root}")
    resolv = Path("/etc/resolv.conf")
    if resolv.is_file():
        shutil.copy(resolv, root / "etc/resolv.conf")
    env = ["env", "DEBIAN_FRONTEND=noninteractive", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    install = ["chroot", str(root), *env, "apt-get", "install", "-y", "-q",
               "--no-install-recommends", *PACKAGES]
    res = subprocess.run(install, capture_output=True, text=True)
    if res.returncode != 0:
        subprocess.run(["chroot", str(root), *env, "apt-get", "update", "-q"],
                       capture_output=True, text=True)
        res = subprocess.run(install, capture_output=True, text=True)
    if res.returncode != 0 or not (root / DRIVER.lstrip("/")).is_file():
        raise RuntimeError("installing the ODBC packages into the bench root failed:\n"
                           + res.stdout[-2000:] + res.stderr[-2000:])
    subprocess.run(["chroot", str(root), "apt-get", "clean"], capture_output=True)
    (root / MARKER).write_text(RECIPE + "\n")


if __name__ == "__main__":
    from testbed.root import root_path

    ensure_odbc(root_path())
