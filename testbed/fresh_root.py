"""A fresh Debian 12 root for the package test (tests/integration/test_package.py).

``debootstrap --variant=minbase bookworm`` plus ``python3`` (what the
package depends on; the test installs it with ``dpkg -i``, offline), cached
beside the bench root (default ``/var/cache/platforma-c2d/bookworm-minbase``,
``C2D_FRESH_ROOT`` overrides) and copied for each run, so every run starts
from the same untouched system. Built once in about a minute.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from testbed.root import debian_mirror

PACKAGES = ("python3",)
RECIPE = "bookworm minbase " + ",".join(PACKAGES) + " v1"
MARKER = ".platforma-c2d-fresh"


def fresh_root_path() -> Path:
    """The cached root (``C2D_FRESH_ROOT`` or the default)."""
    return Path(os.environ.get("C2D_FRESH_ROOT", "/var/cache/platforma-c2d/bookworm-minbase"))


def fresh_root_is_valid(root: Path | None = None) -> bool:
    """Whether the cached root (or ``root``) is a finished build of the current recipe."""
    root = root or fresh_root_path()
    marker = root / MARKER
    if not marker.is_file() or marker.read_text().strip() != RECIPE:
        return False
    res = subprocess.run(["chroot", str(root), "python3", "-c", "import sys; print(sys.version_info[:2])"],
                         capture_output=True, text=True, timeout=60)
    return res.returncode == 0 and "(3, 11)" in res.stdout


def ensure_fresh_root() -> Path:
    """Return the cached bookworm root, building it first when missing or broken.

    Builds into ``<root>.tmp`` and renames, so an interrupted build never
    looks valid. Needs the Debian mirror of this machine's apt sources.
    Raises ``RuntimeError`` when debootstrap fails.
    """
    root = fresh_root_path()
    if fresh_root_is_valid(root):
        return root
    tmp = root.with_name(root.name + ".tmp")
    for d in (tmp, root):
        shutil.rmtree(d, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES),
                          "bookworm", str(tmp), debian_mirror()], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError("debootstrap failed:\n" + res.stdout[-3000:] + res.stderr[-3000:])
    subprocess.run(["chroot", str(tmp), "apt-get", "clean"], check=False)
    (tmp / MARKER).write_text(RECIPE + "\n")
    tmp.rename(root)
    if not fresh_root_is_valid(root):
        raise RuntimeError(f"the freshly built root {root} does not run python3")
    return root


def copy_root(src: Path, dest: Path) -> Path:
    """A private copy of ``src`` at ``dest`` (hard links are not shared: a plain copy)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(src), str(dest)], check=True)
    return dest
