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


def copy_root(source: Path, root: Path) -> None:
    """Copy the bench root ``source`` to ``root`` (without what is mounted in
    ``proc/``, ``dev/`` and ``tmp/``), through ``<root>.tmp`` renamed at the
    end, so an interrupted copy never looks valid. Needs no network. Raises
    ``RuntimeError`` when the copy fails."""
    tmp = root.with_name(root.name + ".tmp")
    for d in (tmp, root):
        if d.exists():
            from testbed.asterisk import release_root  # avoid import cycle at load

            release_root(d)
            shutil.rmtree(d)
    tmp.mkdir(parents=True)
    pack = subprocess.Popen(["tar", "-C", str(source), "--exclude=./proc/*", "--exclude=./dev/*",
                             "--exclude=./tmp/*", "-cf", "-", "."], stdout=subprocess.PIPE)
    unpack = subprocess.run(["tar", "-xf", "-", "-C", str(tmp)], stdin=pack.stdout, capture_output=True)
    pack.stdout.close()
    if pack.wait() != 0 or unpack.returncode != 0:
        raise RuntimeError(f"copying the bench root {source} to {tmp} failed: "
                           + unpack.stderr.decode(errors="replace")[-2000:])
    tmp.rename(root)


def ensure_root(log=print) -> Path:
    """Return a valid bench root, copying or building it first when needed.

    A ``C2D_BENCH_ROOT`` of one's own that is not there yet is a copy of the
    default root when that one is valid (:func:`copy_root`: no network
    needed, so it works inside a network namespace). Otherwise the root is
    built into ``<root>.tmp`` and renamed at the end, so an interrupted build
    never looks valid; that needs root, ``debootstrap`` (installed with
    apt-get when missing) and the package mirror. Raises ``RuntimeError`` on
    failure.
    """
    root = root_path()
    if root_is_valid(root):
        return root
    if root != DEFAULT_ROOT and root_is_valid(DEFAULT_ROOT):
        # A root of one's own (a test run, the demo or the benchmark in a network
        # namespace, where no mirror is reachable): a copy of the shared one.
        log(f"bench: copying the Asterisk 22 root {DEFAULT_ROOT} to {root}")
        copy_root(DEFAULT_ROOT, root)
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
