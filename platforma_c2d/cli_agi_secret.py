"""``platforma-c2d agi-secret set|check``: the FastAGI secret in Asterisk's AstDB (docs/agi.md).

The FastAGI server asks Asterisk for AstDB ``c2d/agi_secret`` on every
session and compares it with ``[agi] secret`` (docs/decisions/0016). This
command stores that value there, or checks that it is there, through
Asterisk's control socket (``asterisk.ctl``, the one ``asterisk -r`` uses),
on the PBX's own host:

* the value is read from the config and written to the socket only: never
  in a process's arguments (``ps``), a shell's history or the console
  history file that ``asterisk -rx '...'`` typed by hand leaves behind;
* Asterisk logs the command neither on its console nor in its log files;
* the value is read back (``database get``) and compared, so ``set`` says
  whether the FastAGI server's next session will be trusted.

The control socket is Asterisk's remote-console protocol: a banner line on
connect, then ``cli quit after <command>`` ended by a NUL byte; the
command's output follows and the socket is closed after it. ARI cannot
write AstDB (``DB()`` is refused to external interfaces unless Asterisk
runs with ``live_dangerously``), and AMI would need a manager account of
its own.
"""

from __future__ import annotations

import hmac
import socket
import sys

#: Where Debian's (and Asterisk's default) ``astrundir`` puts the control socket.
DEFAULT_SOCKET = "/var/run/asterisk/asterisk.ctl"
FAMILY, KEY = "c2d", "agi_secret"


class ConsoleError(Exception):
    """Asterisk's control socket could not be used; the message says what to do."""


def console_command(path: str, command: str, timeout_s: float = 10.0) -> str:
    """Run one Asterisk CLI ``command`` through the control socket at ``path``;
    its output (verbose lines Asterisk sends to consoles left out).

    Raises :class:`ConsoleError` when the socket is missing, refused, not
    readable by this user, or silent for ``timeout_s`` seconds."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(path)
            sock.recv(256)                                   # "host/pid/version\n"
            sock.sendall(b"cli quit after " + command.encode("ascii") + b"\0")
            chunks = []
            while chunk := sock.recv(4096):
                chunks.append(chunk)
    except FileNotFoundError:
        raise ConsoleError(f"{path}: no Asterisk control socket (is Asterisk running on this host? "
                           "give its astrundir's asterisk.ctl with --socket)") from None
    except PermissionError:
        raise ConsoleError(f"{path}: permission denied (run as root or as a member of the "
                           "socket's group, like 'asterisk -r')") from None
    except ConnectionRefusedError:
        raise ConsoleError(f"{path}: connection refused (Asterisk is not running)") from None
    except TimeoutError:
        raise ConsoleError(f"{path}: Asterisk did not answer within {timeout_s:g} s") from None
    except OSError as exc:
        raise ConsoleError(f"{path}: {exc.strerror or exc}") from None
    text = b"".join(chunks).decode("utf-8", "replace")
    # Console log lines start with a non-printable level marker: not the command's output.
    return "".join(line for line in text.splitlines(keepends=True) if line[:1].isprintable())


def stored_secret_matches(path: str, secret: str) -> bool:
    """Whether AstDB ``c2d/agi_secret`` equals ``secret`` (constant-time compare).
    Raises :class:`ConsoleError`."""
    out = console_command(path, f"database get {FAMILY} {KEY}")
    for line in out.splitlines():
        if line.startswith("Value: "):
            return hmac.compare_digest(line[len("Value: "):].strip().encode(), secret.encode())
    return False


def cmd_agi_secret(args) -> int:
    """``set``: store ``[agi] secret`` as AstDB ``c2d/agi_secret`` and read it back;
    ``check``: only compare. 0 when AstDB holds the config's secret, 1 when not
    (or the socket cannot be used), 2 when the config has no secret. Never prints it."""
    from platforma_c2d.cli import _load

    cfg = _load(args.config, quiet=True)
    secret = cfg.agi.secret
    if not secret:
        print("error: agi.secret: not set in the config; set it first (8-200 characters of "
              "A-Z a-z 0-9 . _ ~ + / = -)", file=sys.stderr)
        return 2
    try:
        if args.action == "set":
            out = console_command(args.socket, f"database put {FAMILY} {KEY} {secret}")
            if "Updated database successfully" not in out:
                print(f"error: Asterisk did not store AstDB {FAMILY}/{KEY}: "
                      f"{out.replace(secret, '<secret>').strip()[:200]}", file=sys.stderr)
                return 1
        matches = stored_secret_matches(args.socket, secret)
    except ConsoleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not matches:
        print(f"FAIL AstDB {FAMILY}/{KEY} is missing or is not [agi] secret: the FastAGI server "
              f"refuses every session (untrusted-session); run 'platforma-c2d agi-secret set'")
        return 1
    print(f"ok   AstDB {FAMILY}/{KEY} equals [agi] secret" + (" (stored)" if args.action == "set" else ""))
    return 0


def add_agi_secret_parser(sub) -> None:
    """The ``agi-secret`` subcommand of ``platforma-c2d``."""
    sp = sub.add_parser("agi-secret", help="store or check the FastAGI secret in Asterisk's AstDB")
    sp.add_argument("action", choices=("set", "check"),
                    help="set: store [agi] secret as AstDB c2d/agi_secret; check: only compare")
    sp.add_argument("--config", help="TOML config file (or PLATFORMA_C2D_CONFIG)")
    sp.add_argument("--socket", default=DEFAULT_SOCKET,
                    help="Asterisk's control socket (default %(default)s)")
    sp.set_defaults(func=cmd_agi_secret)
