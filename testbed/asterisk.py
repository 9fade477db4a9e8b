"""Run one real Asterisk 22 inside the bench root, with the project's configs.

The configuration Asterisk runs is one of two sets, chosen by
``C2D_BENCH_CONFIGS`` (or the ``configs`` argument):

* ``ours`` (the default): ``asterisk_conf/`` of this checkout, copied as it
  is, plus a small overlay (``overlay/``: the addresses of the SIPp peers
  that stand for the trunk and the agents);
* ``admin``: an administrator's own PBX (``admin_conf/``, see its README):
  Asterisk's sample configs from the root's ``/etc/asterisk.dist``, their own
  ``pjsip.conf`` (Asterisk's defaults, a trunk with ``send_pai`` and
  ``trust_id_outbound``) and ``extensions.conf`` (their AGI dialplan, our
  contexts merged in as docs/configuration.md says: ``extensions_c2d.conf``
  from ours), and our CSV CDR mapping.

Everything binds to 127.0.0.1; the endpoints and ports are the same in both.
A second node of a cluster test (``AsteriskBench(root, name="b",
address="127.0.0.3")``) runs in the same root with directories of its own
(``/etc/asterisk-b``, ``/var/run/asterisk-b``, ``/var/spool/asterisk-b``,
``/var/log/asterisk-b``, ``/var/lib/asterisk-b``) and every address of its
configuration moved to ``address``; its SIPp peers bind that address too.

``AsteriskBench.stop()`` (also called from ``atexit``) kills every process
whose root is the bench root — Asterisk and any SIPp peer — and unmounts
``/proc`` and ``/dev`` from it, so no process or bind mount outlives a run.
"""

from __future__ import annotations

import atexit
import csv
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "asterisk_conf"
OVERLAY_DIR = Path(__file__).resolve().parent / "overlay"
ADMIN_DIR = Path(__file__).resolve().parent / "admin_conf"
# Files of asterisk_conf/ that an administrator merges into an existing PBX as they are.
ADMIN_MERGED = ("cdr_custom.conf",)
CONFIG_SETS = ("ours", "admin")
#: The FastAGI shared secret of the bench ([agi] secret of testbed/service.py),
#: stored in Asterisk's database at each start as an administrator does
#: (docs/security.md): never in a config file Asterisk logs.
AGI_SECRET = "bench-agi-secret-7f3a9c"


def config_set() -> str:
    """The config set the bench runs: ``C2D_BENCH_CONFIGS`` (``ours`` or ``admin``).

    Raises ``ValueError`` for any other value, so a typo never silently tests ours.
    """
    name = os.environ.get("C2D_BENCH_CONFIGS", "").strip() or "ours"
    if name not in CONFIG_SETS:
        raise ValueError(f"C2D_BENCH_CONFIGS={name!r}: one of {', '.join(CONFIG_SETS)}")
    return name


def merged_dialplan() -> str:
    """Our contexts as docs/configuration.md has an administrator merge them:
    ``asterisk_conf/extensions.conf`` from ``[c2d-is-click2dial]`` up to our
    ``[default]`` (the administrator's file of ``#include extensions_c2d.conf``)."""
    text = (CONF_DIR / "extensions.conf").read_text()
    start, end = text.index("[c2d-is-click2dial]"), text.index("\n[default]")
    return text[start:end + 1]


ARI_URL = "http://127.0.0.1:8088"
ARI_USER = "c2d"
# Its hash is in overlay/ari.conf (password_format=crypt).
ARI_PASSWORD = "bench-ari-7c41e0"
CDR_CSV = "var/log/asterisk/cdr-custom/platforma-c2d.csv"
CDR_FIELDS = ("start", "answer", "end", "clid", "src", "dst", "dcontext", "channel",
              "dstchannel", "lastapp", "disposition", "duration", "billsec",
              "uniqueid", "linkedid", "call_ref", "c2d_call_id", "c2d_leg")


def _mounts_under(root: Path) -> list[str]:
    out = []
    with open("/proc/mounts") as fh:
        for line in fh:
            mnt = line.split()[1].replace("\\040", " ")
            if mnt == str(root) or mnt.startswith(str(root) + "/"):
                out.append(mnt)
    return out


def processes_in(root: Path) -> list[int]:
    """PIDs of the processes whose filesystem root is ``root`` (chroot'ed there)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/root") == str(root):
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def release_root(root: Path, timeout: float = 10.0) -> None:
    """Kill every process chrooted into ``root`` and unmount what is mounted there.

    Idempotent; safe after a crash of an earlier run. SIGTERM first, SIGKILL
    after ``timeout`` seconds.
    """
    pids = processes_in(root)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = processes_in(root)
        time.sleep(0.1)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    while processes_in(root) and time.monotonic() < deadline + 5:
        time.sleep(0.1)
    for mnt in sorted(_mounts_under(root), key=len, reverse=True):
        if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", mnt], capture_output=True)


class AsteriskBench:
    """One Asterisk process in the bench root.

    ``root``: the bench root (see ``root.ensure_root``). ``extra_files``: file
    name → text written into ``/etc/asterisk`` after the config set (tests use
    it for special cases). ``configs``: ``ours`` or ``admin`` (default:
    ``config_set()``). Raises ``RuntimeError`` when Asterisk does not answer
    ARI within ``start(timeout)`` seconds.
    """

    def __init__(self, root: Path, extra_files: dict[str, str] | None = None,
                 configs: str | None = None, *, name: str = "", address: str = "127.0.0.1"):
        self.root = Path(root)
        self.extra_files = extra_files or {}
        self.configs = configs or config_set()
        self.name, self.address = name, address
        suffix = f"-{name}" if name else ""
        self.etc, self.logdir = f"etc/asterisk{suffix}", f"var/log/asterisk{suffix}"
        self.dirs = {"astetcdir": self.etc, "astrundir": f"var/run/asterisk{suffix}",
                     "astspooldir": f"var/spool/asterisk{suffix}", "astlogdir": self.logdir,
                     "astdbdir": f"var/lib/asterisk{suffix}"}
        self._conf_arg = ["-C", f"/{self.etc}/asterisk.conf"] if name else []
        self.proc: subprocess.Popen | None = None
        self.log_path = self.root / self.logdir / "console.log"
        self.ari_url = ARI_URL.replace("127.0.0.1", address)
        self.ari = httpx.Client(base_url=self.ari_url + "/ari", auth=(ARI_USER, ARI_PASSWORD), timeout=10)
        atexit.register(self.stop)

    # --- life cycle -------------------------------------------------------
    def install_config(self) -> None:
        """Replace the root's /etc/asterisk with the config set + extras.

        ``ours``: asterisk_conf/ + overlay. ``admin``: the root's sample
        configs (``/etc/asterisk.dist``) + admin_conf/ + ``ADMIN_MERGED``.
        """
        etc = self.root / self.etc
        if etc.exists():
            shutil.rmtree(etc)
        if self.configs == "admin":
            shutil.copytree(self.root / "etc/asterisk.dist", etc)
            for name in ADMIN_MERGED:
                shutil.copy(CONF_DIR / name, etc / name)
            sources = (ADMIN_DIR,)
        else:
            etc.mkdir(parents=True)
            sources = (CONF_DIR, OVERLAY_DIR)
        for src_dir in sources:
            for f in sorted(src_dir.glob("*.conf")):
                shutil.copy(f, etc / f.name)
        if self.configs == "admin":
            (etc / "extensions_c2d.conf").write_text(merged_dialplan())
        for name, text in self.extra_files.items():
            (etc / name).write_text(text)
        if self.address != "127.0.0.1":
            for f in etc.glob("*.conf"):
                f.write_text(f.read_text().replace("127.0.0.1", self.address))
        if self.name:
            (etc / "asterisk.conf").write_text("[directories]\n" + "".join(
                f"{key} => /{rel}\n" for key, rel in self.dirs.items()))
        keys = etc / "keys"
        keys.mkdir(exist_ok=True)

    def start(self, timeout: float | None = None) -> None:
        """Mount, configure and start Asterisk; return when ARI answers.

        ``timeout``: seconds; by default 60 with our configs and 180 with
        the administrator's (Asterisk's sample set loads every module, which
        takes minutes on a loaded two-core machine).
        """
        if timeout is None:
            timeout = 180.0 if self.configs == "admin" else 60.0
        if self.name:   # a second node: the root's other processes go on
            self._kill()
        else:
            release_root(self.root)
        mounted = _mounts_under(self.root)
        for sub in ("proc", "dev"):
            (self.root / sub).mkdir(exist_ok=True)
            if str(self.root / sub) not in mounted:
                subprocess.run(["mount", "--bind", f"/{sub}", str(self.root / sub)], check=True)
        (self.root / "run/asterisk").mkdir(parents=True, exist_ok=True)
        for rel in self.dirs.values():
            (self.root / rel).mkdir(parents=True, exist_ok=True)
        if self.name:   # no registration of an earlier run
            shutil.rmtree(self.root / self.dirs["astdbdir"], ignore_errors=True)
            (self.root / self.dirs["astdbdir"]).mkdir(parents=True)
        (self.root / "etc/hosts").write_text(f"127.0.0.1 localhost {socket.gethostname()}\n::1 localhost\n")
        self.install_config()
        logdir = self.root / self.logdir
        shutil.rmtree(logdir / "cdr-custom", ignore_errors=True)
        (logdir / "cdr-custom").mkdir(parents=True, exist_ok=True)
        for stale in ("messages.log", "console.log"):
            (logdir / stale).unlink(missing_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["chroot", str(self.root), "asterisk", *self._conf_arg, "-f", "-n", "-vvv"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Asterisk exited with {self.proc.returncode}: {self.tail_log()}")
            try:
                if self.ari.get("/asterisk/info").status_code == 200:
                    self.cli("core waitfullybooted")
                    eps = self.ari.get("/endpoints/PJSIP")
                    if eps.status_code == 200 and any(e["resource"] == "trunk" for e in eps.json()):
                        self.put_agi_secret(AGI_SECRET)
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError("Asterisk did not answer ARI in time: " + self.tail_log())

    def stop(self) -> None:
        """Stop Asterisk and every peer in the root; unmount. Idempotent."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.cli("core stop now", timeout=5)
                self.proc.wait(timeout=5)
            except (subprocess.TimeoutExpired, RuntimeError):
                pass
        if self.name:
            self._kill()
            if processes_in(self.root):
                return      # the root's other node or peers go on
        self.proc = None
        release_root(self.root)

    def _kill(self) -> None:
        """SIGKILL this Asterisk's process group (a second node leaves the rest of the root alone)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        """Stop and start again with the same configuration."""
        self.stop()
        self.start()

    def crash_and_restart(self) -> None:
        """SIGKILL Asterisk (no BYE, no event for anyone), then start it again.

        Every other process in the root (SIPp peers) is killed too.
        """
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None
        release_root(self.root, timeout=2)
        self.start()

    # --- talking to it ----------------------------------------------------
    def cli(self, command: str, timeout: float = 20) -> str:
        """Run an Asterisk CLI command (``asterisk -rx``) and return its output."""
        res = subprocess.run(["chroot", str(self.root), "asterisk", *self._conf_arg, "-rx", command],
                             capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            raise RuntimeError(f"asterisk -rx {command!r}: {res.stderr.strip()}")
        return res.stdout

    def put_agi_secret(self, secret: str | None) -> None:
        """Store ``secret`` as AstDB ``c2d/agi_secret`` (the FastAGI shared
        secret), or delete the key for ``None``. Raises ``RuntimeError``
        when the CLI fails."""
        if secret is None:
            self.cli("database del c2d agi_secret")
        else:
            out = self.cli(f"database put c2d agi_secret {secret}")
            if "Updated database successfully" not in out:
                raise RuntimeError(f"database put c2d agi_secret: {out.strip()}")

    def tail_log(self, lines: int = 40) -> str:
        """The last ``lines`` lines of Asterisk's console output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def channels(self) -> list[dict]:
        """``GET /ari/channels``: every channel in Asterisk now."""
        return self.ari.get("/channels").json()

    def bridges(self) -> list[dict]:
        """``GET /ari/bridges``: every bridge in Asterisk now."""
        return self.ari.get("/bridges").json()

    def wait_idle(self, timeout: float = 10.0) -> tuple[list[dict], list[dict]]:
        """Wait until Asterisk has no channel and no bridge; return what is left."""
        deadline = time.monotonic() + timeout
        while True:
            chans, bridges = self.channels(), self.bridges()
            if (not chans and not bridges) or time.monotonic() > deadline:
                return chans, bridges
            time.sleep(0.2)

    def hangup_everything(self) -> None:
        """Hang up every channel and destroy every bridge (cleanup between tests)."""
        for ch in self.channels():
            self.ari.delete(f"/channels/{ch['id']}")
        for br in self.bridges():
            self.ari.delete(f"/bridges/{br['id']}")

    @property
    def unanswered_cdrs(self) -> bool:
        """True when the running cdr.conf writes rows of unanswered calls
        (``unanswered=yes``; Asterisk's default is no)."""
        return self._cdr_option_on("unanswered")

    @property
    def congestion_cdrs(self) -> bool:
        """True when the running cdr.conf says ``CONGESTION`` for a congested
        Dial() (``congestion=yes``); Asterisk's default (no) says ``FAILED``."""
        return self._cdr_option_on("congestion")

    def _cdr_option_on(self, option: str) -> bool:
        path = self.root / "etc/asterisk/cdr.conf"
        text = path.read_text(errors="replace") if path.exists() else ""
        return any(line.split(";", 1)[0].replace(" ", "").lower() == f"{option}=yes"
                   for line in text.splitlines())

    def cdr_rows(self) -> list[dict]:
        """Every CDR row written so far, as dicts keyed by ``CDR_FIELDS``."""
        path = self.root / CDR_CSV.replace("var/log/asterisk", self.logdir)
        if not path.exists():
            return []
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            return [dict(zip(CDR_FIELDS, row)) for row in csv.reader(fh)]

    def wait_cdr_rows(self, predicate, count: int = 1, timeout: float = 10.0) -> list[dict]:
        """Wait until at least ``count`` CDR rows satisfy ``predicate``; return them."""
        deadline = time.monotonic() + timeout
        while True:
            rows = [r for r in self.cdr_rows() if predicate(r)]
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.2)
