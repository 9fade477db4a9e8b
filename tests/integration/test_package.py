"""The Debian package on a fresh Debian 12 root (docs/operations.md, "Install
from the package"): built by ``scripts/build-deb.sh``, installed with dpkg
into a copy of a bookworm minbase root, ``platforma-c2d --version`` and
``check`` run there (as the service's user, against the bench Asterisk),
then purged: the root must be as it was before, file for file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from platforma_c2d import __version__
from testbed.asterisk import ARI_PASSWORD
from testbed.fresh_root import copy_root, ensure_fresh_root, fresh_root_is_valid

REPO = Path(__file__).resolve().parents[2]
# How the package is made: a package in dist/ older than any of these is
# rebuilt. A change of platforma_c2d/ alone does not rebuild it (on CI dist/
# is empty, so the package is always built from the code under test).
INPUTS = ("setup.cfg", "pyproject.toml", "constraints.txt", "deploy", "config", "scripts/build-deb.sh")
# dpkg's own records and logs change with every install; they are not the package's files.
NOT_COMPARED = ("var/lib/dpkg/", "var/log/", "var/cache/debconf/", "tmp/", "proc/", "dev/", "run/")
# shadow's backup copies, rewritten by useradd/userdel themselves.
BACKUPS = {"etc/passwd-", "etc/group-", "etc/shadow-", "etc/gshadow-"}


def skip_without_network(what_to_do: str) -> None:
    """Skip the test when this machine cannot reach the package mirrors (an
    isolated network namespace): the package and the root need them once."""
    try:
        socket.getaddrinfo("deb.debian.org", 443)
    except OSError:
        pytest.skip(f"no network here to fetch packages: {what_to_do}")


def built_package() -> Path:
    """``dist/platforma-c2d_<version>-1_<arch>.deb``, (re)built when older than its inputs."""
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    deb = REPO / "dist" / f"platforma-c2d_{__version__}-1_{arch}.deb"
    newest = 0.0
    for name in INPUTS:
        path = REPO / name
        files = [path] if path.is_file() else [p for p in path.rglob("*")
                                               if p.is_file() and "__pycache__" not in p.parts]
        newest = max([newest, *(p.stat().st_mtime for p in files)])
    if not deb.exists() or deb.stat().st_mtime < newest:
        skip_without_network("build the package first: bash scripts/build-deb.sh")
        subprocess.run(["bash", "scripts/build-deb.sh", "dist"], cwd=REPO, check=True, timeout=1800)
    return deb


def snapshot(root: Path) -> dict[str, str]:
    """Every path of ``root`` (but dpkg's records, logs, /tmp) → its kind, and for files
    under /etc their content's digest."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel.startswith(NOT_COMPARED) or rel + "/" in NOT_COMPARED or rel in BACKUPS:
                continue
            path = Path(dirpath) / name
            if path.is_symlink():
                out[rel] = "link " + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            elif rel.startswith("etc/"):
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[rel] = "file"
    return out


def in_root(root: Path, *cmd: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``cmd`` chrooted into ``root``."""
    return subprocess.run(["chroot", str(root), *cmd], capture_output=True, text=True, timeout=timeout,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})


@pytest.fixture
def fresh_root(asterisk):
    """A private copy of the cached bookworm root; removed after the test."""
    tmp = Path(os.environ.get("C2D_BENCH_TMP", "/tmp/c2d-bench-tests"))
    if not fresh_root_is_valid():
        skip_without_network("build the fresh root first: python -c 'from testbed.fresh_root "
                             "import ensure_fresh_root; ensure_fresh_root()'")
    root = copy_root(ensure_fresh_root(), tmp / "fresh-debian-root")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_package_installs_runs_check_against_asterisk_and_purges_clean(fresh_root):
    deb = built_package()
    before = snapshot(fresh_root)
    shutil.copy(deb, fresh_root / "tmp" / deb.name)

    res = in_root(fresh_root, "dpkg", "-i", f"/tmp/{deb.name}")
    assert res.returncode == 0, res.stdout + res.stderr
    res = in_root(fresh_root, "platforma-c2d", "--version")
    assert res.returncode == 0 and res.stdout.strip() == f"platforma-c2d {__version__}", res.stderr

    # What postinst made: the user, the journal's directory, the config readable by its group.
    assert in_root(fresh_root, "getent", "passwd", "platforma-c2d").returncode == 0
    res = in_root(fresh_root, "stat", "-c", "%U:%G %a", "/var/lib/platforma-c2d",
                  "/etc/platforma-c2d/config.toml")
    assert res.stdout.split("\n")[:2] == ["platforma-c2d:platforma-c2d 750", "root:platforma-c2d 640"]
    unit = (fresh_root / "lib/systemd/system/platforma-c2d.service").read_text()
    assert "ExecStart=/usr/bin/platforma-c2d serve --config /etc/platforma-c2d/config.toml" in unit

    # The shipped sample config against the bench Asterisk, as the service's
    # own user, with the ARI password given as docs/configuration.md says
    # (the environment wins over the file; the sample's is refused).
    res = in_root(fresh_root, "runuser", "-u", "platforma-c2d", "--", "env",
                  f"PLATFORMA_C2D_ARI_PASSWORD={ARI_PASSWORD}", "platforma-c2d", "check",
                  "--config", "/etc/platforma-c2d/config.toml", "--agent", "1001")
    assert res.returncode == 0, res.stdout + res.stderr
    for line in ("ok   config: valid", "ok   store: usable", "ok   ari: reachable, Asterisk 22.",
                 "ok   cdr: backend running: cdr_custom", "ok   agent: endpoint PJSIP/1001 exists"):
        assert line in res.stdout, res.stdout

    # An upgrade (the same version again takes the same path: postinst with
    # the old version as $2) keeps the administrator's edits of the config.
    config = fresh_root / "etc/platforma-c2d/config.toml"
    config.write_text(config.read_text() + "\n# edited by the administrator\n")
    res = in_root(fresh_root, "dpkg", "-i", f"/tmp/{deb.name}")
    assert res.returncode == 0, res.stdout + res.stderr
    assert config.read_text().endswith("# edited by the administrator\n")
    assert in_root(fresh_root, "platforma-c2d", "--version").returncode == 0

    (fresh_root / "tmp" / deb.name).unlink()
    res = in_root(fresh_root, "dpkg", "--purge", "platforma-c2d")
    assert res.returncode == 0, res.stdout + res.stderr
    after = snapshot(fresh_root)
    left = sorted(set(after.items()) - set(before.items()))
    gone = sorted(set(before.items()) - set(after.items()))
    assert (left, gone) == ([], []), f"left behind: {left[:20]}; changed or removed: {gone[:20]}"
