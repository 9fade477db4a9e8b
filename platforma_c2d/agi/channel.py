"""The AGI protocol on one FastAGI connection, with pyst2 (SPEC section 6).

pyst2's :class:`asterisk.agi.AGI` speaks the protocol (the ``agi_*``
environment, ``GET VARIABLE``, ``SET VARIABLE``, result lines); this module
gives it what a network server needs and a stdin script does not:

* :class:`LineReader` stands in for pyst2's ``stdin``: it reads lines from
  the socket with a timeout per read (``[agi] read_timeout_s``) and a
  deadline for the whole session, caps the length and number of lines, and
  skips the ``HANGUP`` line Asterisk sends when the channel hangs up (pyst2
  cannot parse it). A silent, slow or endless peer costs one thread for a
  bounded time, never more.
* :class:`AgiChannel` is pyst2's ``AGI`` without what breaks in a thread
  (its constructor installs a SIGHUP handler, which only the main thread
  may do) and without its debug chatter on stderr (which would copy header
  values to the log unescaped). Its :meth:`AgiChannel.set` refuses any
  value that could change the meaning of the ``SET VARIABLE`` command line.
  It reads the environment strictly (:mod:`platforma_c2d.agi.trust`) and
  the answers to commands strictly: a line that is not a whole answer
  means the session is out of step, and it ends.
"""

from __future__ import annotations

import re
import secrets
import socket
import time

from asterisk.agi import AGI, AGIAppError, AGIHangup, AGIInvalidCommand, AGIUsageError

from platforma_c2d.agi.trust import AgiRefused, parse_environment

#: Longest line accepted from Asterisk, in bytes (an ``agi_*`` line or a
#: result line): room for a header as long as a SIP message over UDP can be.
MAX_LINE = 70_000
#: Most lines one session may read (environment + one result per command).
MAX_LINES = 256

# Names we set: a variable, or a function with a lower-case argument.
_SAFE_NAME = re.compile(r"[A-Z][A-Z0-9_]*(\([a-z][a-z0-9_]*\))?")
# Values we set: what already passed the rules (digits, call_ref
# characters, kebab-case ids, field names and commas). No space, quote,
# backslash or control character, so nothing can end the quoted argument.
_SAFE_VALUE = re.compile(r"[A-Za-z0-9._~:,-]*")
# A whole answer to a command: "200 result=N", an optional "(data)" and
# an optional "endpos=N" (what Asterisk writes, and nothing more).
_RESULT = re.compile(r"200 result=(-?[0-9]+)(?: \((.*)\))?(?: endpos=-?[0-9]+)?")


class AgiClosed(AGIHangup):
    """Asterisk closed the connection (or the session ran out of time or
    lines). Subclass of pyst2's ``AGIHangup``: the session is over."""


class LineReader:
    """Lines from a FastAGI socket, for pyst2 (its ``stdin``).

    ``sock``: the connected socket. ``read_timeout_s``: seconds one read may
    wait for data (float). ``session_timeout_s``: seconds from now after
    which no read is allowed any more. ``readline()`` returns one line as
    ``str`` with its ``"\\n"`` (a blank line is ``"\\n"``), decoded as UTF-8
    with undecodable bytes replaced; it raises :class:`AgiClosed` on end of
    stream, a timeout, a line longer than :data:`MAX_LINE` bytes or more
    than :data:`MAX_LINES` lines. ``hung_up`` becomes ``True`` once Asterisk
    said ``HANGUP`` (that line is not returned).
    """

    def __init__(self, sock: socket.socket, read_timeout_s: float, session_timeout_s: float):
        self._sock = sock
        self._read_timeout = read_timeout_s
        self._started = time.monotonic()
        self._deadline = self._started + session_timeout_s
        self._buf = b""
        self._lines = 0
        self.hung_up = False

    def readline(self, _size: int = -1) -> str:
        """The next line (see the class docstring)."""
        while True:
            line = self._raw_line()
            if line.rstrip("\r") == "HANGUP":
                self.hung_up = True
                continue
            return line.rstrip("\r") + "\n"

    def read_environment(self) -> list[str]:
        """The environment's lines up to the blank line that ends it, each
        as received without its ``"\\n"`` (nothing stripped). Raises
        :class:`AgiClosed` like :meth:`readline`."""
        lines = []
        while (line := self._raw_line()) != "":
            lines.append(line)
        return lines

    def set_session_timeout(self, session_timeout_s: float) -> None:
        """Move the deadline to ``session_timeout_s`` seconds after the reader
        was made (the connection's start): a session that has shown the
        secret within the short deadline of authentication gets the whole
        session's."""
        self._deadline = self._started + session_timeout_s

    def pending(self) -> bool:
        """Whether bytes were received that no read has returned yet."""
        return bool(self._buf)

    def _raw_line(self) -> str:
        while b"\n" not in self._buf:
            if len(self._buf) > MAX_LINE:
                raise AgiClosed(f"line longer than {MAX_LINE} bytes")
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise AgiClosed("session took too long")
            self._sock.settimeout(min(self._read_timeout, remaining))
            try:
                chunk = self._sock.recv(4096)
            except (socket.timeout, TimeoutError):
                raise AgiClosed("no answer from Asterisk in time") from None
            except OSError as exc:
                raise AgiClosed(f"connection error ({exc.strerror or exc})") from None
            if not chunk:
                raise AgiClosed("connection closed by Asterisk")
            self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\n")
        if len(raw) > MAX_LINE:
            raise AgiClosed(f"line longer than {MAX_LINE} bytes")
        self._lines += 1
        if self._lines > MAX_LINES:
            raise AgiClosed(f"more than {MAX_LINES} lines in one session")
        return raw.decode("utf-8", "replace")


class LineWriter:
    """Command lines to a FastAGI socket, for pyst2 (its ``stdout``).

    ``write(text)`` sends ``text`` UTF-8 encoded at once; ``flush()`` does
    nothing. Raises :class:`AgiClosed` when the socket is gone or a send
    takes longer than ``send_timeout_s``.
    """

    def __init__(self, sock: socket.socket, send_timeout_s: float):
        self._sock = sock
        self._timeout = send_timeout_s

    def write(self, text: str) -> int:
        """Send ``text``; return its length in characters."""
        self._sock.settimeout(self._timeout)
        try:
            self._sock.sendall(text.encode("utf-8"))
        except OSError as exc:
            raise AgiClosed(f"cannot send to Asterisk ({exc.strerror or exc})") from None
        return len(text)

    def flush(self) -> None:
        """Nothing to do: every write is sent at once."""


class _Discard:
    """A write-only sink for pyst2's debug output."""

    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass


class AgiChannel(AGI):
    """One AGI session (pyst2 ``AGI``) over a :class:`LineReader` and a
    writer with ``write``/``flush``.

    Construction reads the ``agi_*`` environment into ``env`` (``dict[str,
    str]``, keys such as ``agi_channel``, ``agi_extension``,
    ``agi_network_script``); it raises :class:`AgiClosed` if the connection
    fails first and :class:`~platforma_c2d.agi.trust.AgiRefused` for an
    environment :func:`~platforma_c2d.agi.trust.parse_environment` refuses
    or followed at once by more data (lines a caller added). Every command
    may raise a pyst2 ``AGIError`` (an error answer), :class:`AgiClosed`,
    or :class:`~platforma_c2d.agi.trust.AgiRefused` for an answer that is
    not a whole answer line.
    """

    def __init__(self, reader: LineReader, writer) -> None:  # noqa: D107 - see class
        # Not AGI.__init__: it installs a SIGHUP handler (main thread only)
        # and writes every environment line to stderr.
        self.stdin, self.stdout, self.stderr = reader, writer, _Discard()
        self.reader = reader
        self._got_sighup = False
        self.env: dict[str, str] = parse_environment(reader.read_environment())
        if reader.pending():
            raise AgiRefused("more lines after the end of the environment")

    def get_result(self, stdin=None) -> dict:
        """Read one answer, strictly (replaces pyst2's lenient parser).

        Returns ``{"result": (value, data)}`` for ``200 result=value
        [(data)]``. Raises pyst2 ``AGIAppError`` for ``result=-1``,
        ``AGIInvalidCommand`` (510), :class:`AgiClosed` (511: the channel
        is gone), ``AGIUsageError`` (520), and
        :class:`~platforma_c2d.agi.trust.AgiRefused` for any other line or
        one with a CR or NUL: the session is out of step. Other characters
        of a value are left to the rules that check it.
        """
        line = self.stdin.readline()[:-1]
        if "\r" in line or "\0" in line:    # what could frame a line of its own
            raise AgiRefused("an answer with a carriage return or NUL")
        match = _RESULT.fullmatch(line)
        if match:
            if match.group(1) == "-1":
                raise AGIAppError("Error executing application, or hangup")
            return {"result": (match.group(1), match.group(2) or "")}
        code = line[:4]
        if code in ("510 ", "510-"):
            raise AGIInvalidCommand(line[4:])
        if code in ("511 ", "511-"):
            raise AgiClosed("the channel is gone (511)")
        if code == "520-":
            while not self.stdin.readline().startswith("520 "):
                pass
            raise AGIUsageError(line)
        raise AgiRefused(f"an answer that is not one: {ascii(line)[1:-1][:40]}")

    def check_in_step(self) -> None:
        """Ask Asterisk to echo a random token; raise
        :class:`~platforma_c2d.agi.trust.AgiRefused` unless that token is
        the answer. A value that carried a newline would have shifted every
        later answer by a line: this catches it before anything is acted on.
        """
        token = secrets.token_hex(16)
        if self.get_full_variable(token) != token:
            raise AgiRefused("answers out of step with the commands")

    @classmethod
    def on_socket(cls, sock: socket.socket, read_timeout_s: float,
                  session_timeout_s: float) -> "AgiChannel":
        """Start a session on a connected socket (reads the environment).

        ``read_timeout_s``: seconds per read and per send;
        ``session_timeout_s``: seconds for every read of the session.
        """
        return cls(LineReader(sock, read_timeout_s, session_timeout_s),
                   LineWriter(sock, read_timeout_s))

    @property
    def hung_up(self) -> bool:
        """Whether Asterisk reported that the channel hung up."""
        return self.reader.hung_up

    def get(self, name: str) -> str:
        """``GET VARIABLE name``: the value of a channel variable or
        function, ``""`` when unset or empty. ``name`` must be one of ours
        (a literal in this package). Raises pyst2 ``AGIError`` / ``AgiClosed``."""
        return self.get_variable(name)

    def get_full(self, name: str) -> str:
        """``GET FULL VARIABLE ${name}``: like :meth:`get`, without its 1,024-byte limit.

        ``GET VARIABLE`` reads into a 1,024-byte buffer: a longer variable
        comes back cut, and a longer SIP header (``PJSIP_HEADER``) as
        nothing at all. SPEC §1 checks a value whole, then cuts it, so
        values the caller sends (a header, a variable the dialplan took
        from one) are read with this. A variable comes back whole; a
        dialplan function as long as Asterisk reads it (``PJSIP_HEADER``:
        4,095 bytes, then nothing). The value is substituted once, never
        evaluated again. ``name``: one of ours (a literal in this
        package). Raises pyst2 ``AGIError`` / ``AgiClosed``.
        """
        return self.get_full_variable("${" + name + "}")

    def database_get(self, family: str, key: str) -> str | None:
        """``DATABASE GET family key``: the AstDB value, ``None`` when the key
        is not there. ``family``, ``key``: literals of this package (no
        space or quote). Asterisk neither logs this command nor keeps the
        value in a channel variable (the ``DB()`` function would set
        ``DB_RESULT``), so a secret read this way stays out of its logs
        (docs/decisions/0016-agi-secret-in-astdb.md). Raises pyst2
        ``AGIError`` / ``AgiClosed``.
        """
        code, value = self.execute("DATABASE GET", family, key)["result"]
        return value if code == "1" else None

    def set(self, name: str, value: str) -> None:
        """``SET VARIABLE name value``.

        ``value`` must already have passed the Click2Dial rules; as a last
        line of defence it must be made only of ``A-Z a-z 0-9 . _ ~ : , -``
        (which excludes spaces, quotes, backslashes and control characters)
        and ``name`` must look like ``VAR`` or ``FUNC(arg)``. Raises
        ``ValueError`` otherwise, and pyst2 ``AGIError`` / ``AgiClosed`` on a
        failed command.
        """
        if not _SAFE_NAME.fullmatch(name) or not isinstance(value, str) \
                or not _SAFE_VALUE.fullmatch(value):
            raise ValueError(f"refusing to SET VARIABLE {ascii(name)} to an unchecked value")
        self.set_variable(name, value)
