"""Build and cache the Debian-unstable root that holds Asterisk 22 and SIPp.

The root lives outside the checkout (default ``/var/cache/platforma-c2d/
asterisk22-sid``, override with ``C2D_BENCH_ROOT``) and is reused by every
run. It is considered valid when its marker file names the current recipe and
``asterisk -V`` and ``sipp -v`` run inside it; anything else (missing, half
built, broken) is thrown away and rebuilt, which takes about 1.5 minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

DEFAULT_ROOT = Path("/var/cache/platforma-c2d/asterisk22-sid")
PACKAGES = ("asterisk", "asterisk-modules", "asterisk-config", "sip-tester")
RECIPE = "sid minbase " + ",".join(PACKAGES) + " v1"
MARKER = ".platforma-c2d-bench"


def root_path() -> Path:
    """The bench root directory (``C2D_BENCH_ROOT`` or the default)."""
    return Path(os.environ.get("C2D_BENCH_ROOT", str(DEFAULT_ROOT)))


def debian_mirror() -> str:
    """The Debian mirror URI this machine's apt already uses.

    Reads the ``URIs:`` line of the deb822 sources, then the first ``deb``
    line of ``sources.list``. Raises ``RuntimeError`` when none is configured.
    """
    for src in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in src.read_text().splitlines():
            if line.startswith("URIs:"):
                for uri in line.split()[1:]:
                    if "security" not in uri:
                        return uri
    lst = Path("/etc/apt/sources.list")
    if lst.exists():
        for line in lst.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "deb" and "security" not in parts[1]:
                return parts[1] if not parts[1].startswith("[") else parts[2]
    raise RuntimeError("no Debian mirror in /etc/apt: cannot build the Asterisk root")


def root_is_valid(root: Path) -> bool:
    """True when ``root`` holds a finished build of the current recipe that runs."""
    marker = root / MARKER
    if not marker.is_file() or marker.read_text().strip() != RECIPE:
        return False
    for cmd in (["asterisk", "-V"], ["sipp", "-v"]):
        try:
            res = subprocess.run(["chroot", str(root), *cmd], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return False
        out = res.stdout + res.stderr
        if b"Asterisk 22" not in out and b"SIPp" not in out:
            return False
    return (root / "etc/asterisk.dist").is_dir()


def ensure_root(log=print) -> Path:
    """Return a valid bench root, building it first when needed.

    Builds into ``<root>.tmp`` and renames at the end, so an interrupted build
    never looks valid. Needs root, ``debootstrap`` (installed with apt-get when
    missing) and the package mirror. Raises ``RuntimeError`` on failure.
    """
    root = root_path()
    if root_is_valid(root):
        return root
    log(f"bench: building the Asterisk 22 root in {root} (about 90 s, once)")
    if shutil.which("debootstrap") is None:
        subprocess.run(["apt-get", "update", "-q"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-q", "debootstrap"], check=True)
    tmp = root.with_name(root.name + ".tmp")
    for d in (tmp, root):
        if d.exists():
            from testbed.asterisk import release_root  # avoid import cycle at load

            release_root(d)
            shutil.rmtree(d)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        ["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES),
         "sid", str(tmp), debian_mirror()],
        capture_output=True, text=True,
    )
    if res.returncode != 0:
        raise RuntimeError("debootstrap failed:\n" + res.stdout[-3000:] + res.stderr[-3000:])
    shutil.copytree(tmp / "etc/asterisk", tmp / "etc/asterisk.dist")
    (tmp / MARKER).write_text(RECIPE + "\n")
    tmp.rename(root)
    if not root_is_valid(root):
        raise RuntimeError(f"the freshly built root {root} does not run Asterisk/SIPp")
    return root
