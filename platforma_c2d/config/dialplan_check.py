"""``check``: does the dialplan hand the agents' calls to customers to the service?

A header (WebRTC) call reaches the service only if the dialplan context of
the calling phone runs ``Stasis(<[ari] app>)`` for a customer's number
(SPEC §4); a dialplan-only PBX runs ``AGI()`` there instead (SPEC §6).
Neither shows in ARI, so the dialplan is read with Asterisk's CLI
(``dialplan show <number>@<context>``), the way an administrator would
read it: the first extension that matches a customer's number in the
phone's context (its own extensions before the contexts it includes), the
applications of that extension, and the contexts its ``Goto``/``Gosub``
lines name (at most ``MAX_HOPS`` deep). Global variables in those lines
(``${C2D_APP}``, ``${C2D_PBX_CONTEXT}``) are read over ARI.

Pure functions here; ``cli_check.cmd_check`` runs the CLI and prints the lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

#: ``[dial]`` key of a context our originated legs are dialled from (ADR 0014) →
#: (the ``[globals]`` marker that says it is merged, the legs dialled through
#: it, the context we ship in extensions.conf).
LEG_CONTEXTS = {
    "trunk_leg_context": ("C2D_TRUNK_LEG_CONTEXT", "callee legs", "c2d-trunk-leg"),
    "agent_leg_context": ("C2D_AGENT_LEG_CONTEXT", "REST calls' agent legs", "c2d-agent-leg"),
}

#: A number valid as a callee (SPEC §1: 0 + 9 digits), the call a dialplan is tried with.
SAMPLE_CALLEE = "0115550100"
MAX_HOPS = 3
_SECTION = re.compile(r"^\[ (?:Included )?[Cc]ontext '([^']+)'")
_PRIORITY = re.compile(r"^\s*(?:'([^']+)'\s*=>)?\s*(?:\[[^\]]*\])?\s*\d+\.\s+(\w+)\((.*?)\)\s*(?:\[[^\]]*\])?\s*$")
_VAR = re.compile(r"\$\{(\w+)\}")


@dataclass
class Route:
    """Where a customer's number goes from one context.

    ``kind``: ``stasis`` (``app`` = the Stasis app name), ``agi``,
    ``none`` (some extension matches, but runs neither) or ``missing``
    (no such context, or no extension matches: ``why`` says which).
    ``apps``: the applications seen on the way, for the message.
    """

    kind: str
    app: str = ""
    why: str = ""
    apps: list[str] = field(default_factory=list)


def first_extension(output: str) -> list[tuple[str, str]]:
    """The (application, data) lines of the first matching extension in
    ``dialplan show N@CTX`` output, in priority order; [] if none."""
    steps: list[tuple[str, str]] = []
    started = False
    for line in output.splitlines():
        if _SECTION.match(line):
            if started:
                break
            continue
        m = _PRIORITY.match(line)
        if not m:
            continue
        if m.group(1) is not None:          # a new extension begins
            if started:
                break
            started = True
        if started:
            steps.append((m.group(2), m.group(3)))
    return steps


def _expand(text: str, number: str, global_var: Callable[[str], str]) -> str:
    return _VAR.sub(lambda m: number if m.group(1) == "EXTEN" else global_var(m.group(1)), text)


def route_of(context: str, number: str, show: Callable[[str], str],
             global_var: Callable[[str], str], hops: int = MAX_HOPS) -> Route:
    """Follow ``number`` dialled from ``context``.

    ``show(cmd)``: the output of an Asterisk CLI command. ``global_var(name)``:
    a global variable's value ("" when unset).
    """
    out = show(f"dialplan show {number}@{context}")
    if "There is no existence of" in out and f"'{context}' context" in out:
        return Route("missing", why=f"context {context} does not exist in the dialplan")
    steps = first_extension(out)
    if not steps:
        return Route("missing", why=f"no extension of context {context} (or of what it includes) "
                                    f"matches {number}")
    apps = [app for app, _ in steps]
    for app, data in steps:
        if app.lower() == "stasis":
            name = _expand(data, number, global_var).split(",", 1)[0].strip()
            return Route("stasis", app=name, apps=apps)
        if app.lower() == "agi":
            return Route("agi", apps=apps)
    if hops > 0:
        for app, data in steps:
            if app.lower() not in ("goto", "gosub"):
                continue
            args = [a.strip() for a in _expand(data, number, global_var).split(",")]
            if len(args) == 3 and args[0] and args[0] != context:
                nxt = route_of(args[0], args[1] or number, show, global_var, hops - 1)
                if nxt.kind in ("stasis", "agi"):
                    return Route(nxt.kind, app=nxt.app, apps=apps + nxt.apps)
    return Route("none", apps=apps)


def judge(contexts: dict[str, list[str]], agents: dict[str, str], app: str,
          routes: dict[str, Route], number: str = SAMPLE_CALLEE) -> list[tuple[str, str]]:
    """The ``check`` lines for the phones' contexts.

    ``contexts``: context → the extension-named endpoints that have it;
    ``agents``: each ``--agent`` → its endpoint's context; ``app``: ``[ari] app``;
    ``routes``: context → :func:`route_of`. FAIL when a context hands calls
    to another Stasis app, when an agent's context reaches neither
    ``Stasis(app)`` nor an AGI, and when no phone's context does.
    """
    out: list[tuple[str, str]] = []
    fix = ("set context=c2d-agents (c2d-webrtc for browser phones) on the agents' endpoints and "
           "merge our contexts (docs/configuration.md, \"Merging into your dialplan\")")

    def who(ctx: str) -> str:
        names = contexts.get(ctx, [])
        return ", ".join(names[:5]) + (", …" if len(names) > 5 else "")

    def path(route: Route) -> str:
        if route.kind == "missing":
            return route.why
        return "it runs " + (", ".join(dict.fromkeys(route.apps)) or "nothing")

    for ctx, route in sorted(routes.items()):
        if route.kind == "stasis" and route.app != app:
            out.append(("FAIL", f"dialplan: context {ctx} ({who(ctx)}) hands calls to customers to "
                                f"Stasis({route.app}), but [ari] app is {app}: set C2D_APP={app} in "
                                "[globals] of extensions.conf, or the app name in its Stasis() line"))
    for agent, ctx in sorted(agents.items()):
        route = routes.get(ctx)
        if route is not None and route.kind not in ("stasis", "agi"):
            out.append(("FAIL", f"dialplan: a call of agent {agent} (context {ctx}) to a customer's "
                                f"number ({number}) never reaches Stasis({app}) or the FastAGI server: "
                                f"{path(route)}; {fix}"))
    served = {ctx: r for ctx, r in routes.items() if (r.kind == "stasis" and r.app == app) or r.kind == "agi"}
    if not served and routes and not any(level == "FAIL" for level, _ in out):
        reasons = "; ".join(f"{ctx} ({who(ctx)}): {path(r)}" for ctx, r in sorted(routes.items())[:4])
        out.append(("FAIL", f"dialplan: no phone's context hands a call to a customer's number ({number}) "
                            f"to Stasis({app}) or the FastAGI server: {reasons}; {fix}"))
    for ctx, route in sorted(served.items()):
        target = f"Stasis({app})" if route.kind == "stasis" else "the FastAGI server (AGI)"
        out.append(("ok", f"dialplan: calls to customers from context {ctx} ({who(ctx)}) reach {target}"))
    return out


def cli_runner(rx_command: str | None) -> Callable[[str], str] | None:
    """A function running one Asterisk CLI command, or None when there is none.

    ``rx_command``: the command prefix ``check --asterisk-rx`` was given
    (e.g. ``sudo asterisk -rx``), the CLI command is appended as one
    argument; default ``asterisk -rx`` when ``asterisk`` is on the PATH.
    The function raises ``OSError`` or ``subprocess.SubprocessError`` when
    the command cannot run or takes over 15 s.
    """
    import shlex
    import shutil
    import subprocess

    if rx_command:
        prefix = shlex.split(rx_command)
    elif shutil.which("asterisk"):
        prefix = ["asterisk", "-rx"]
    else:
        return None

    def run(command: str) -> str:
        res = subprocess.run([*prefix, command], capture_output=True, text=True, timeout=15)
        if res.returncode != 0 and not res.stdout:
            raise OSError(res.stderr.strip()[:200] or f"exit status {res.returncode}")
        return res.stdout

    return run


def check_dialplan(pjsip: Callable[[], dict[str, dict[str, str]]], global_var: Callable[[str], str],
                   cfg, agents: list[str], rx_command: str | None) -> list[tuple[str, str]]:
    """The ``check`` lines of the dialplan (``judge``), from ARI and the CLI.

    ``pjsip()``: the PJSIP endpoints' settings read over ARI (name →
    attribute → value), called only when the CLI can be run;
    ``global_var(name)``: a global variable's value over ARI ("" when
    unset); ``cfg``: the Config; ``agents``: the ``--agent`` extensions;
    ``rx_command``: see :func:`cli_runner`. The phones are the endpoints
    named after an extension, with their ``context``; the trunk is left out.
    """
    from platforma_c2d.config.checks import trunk_of
    from platforma_c2d.rules import is_extension

    show = cli_runner(rx_command)
    if show is None:
        return [("WARN", "dialplan: not checked, no 'asterisk' command here to read it with: run "
                         "check on the PBX, or give --asterisk-rx 'COMMAND' (e.g. 'sudo asterisk -rx')")]
    trunk = trunk_of(cfg.dial.trunk_endpoint)[1]
    contexts: dict[str, list[str]] = {}
    by_endpoint: dict[str, str] = {}
    for name, settings in pjsip().items():
        if name == trunk or not is_extension(name):
            continue
        ctx = settings.get("context", "")
        by_endpoint[name] = ctx
        contexts.setdefault(ctx, []).append(name)
    agent_contexts = {}
    for agent in agents:
        tech, name = trunk_of(cfg.dial.agent_endpoint.format(agent=agent))
        if tech.upper() == "PJSIP" and name in by_endpoint:
            agent_contexts[agent] = by_endpoint[name]
    if not contexts:
        return [("WARN", "dialplan: no PJSIP endpoint named after an extension: not checked")]

    try:
        routes = {ctx: route_of(ctx, SAMPLE_CALLEE, show, global_var) for ctx in contexts}
        legs = []
        for key, (marker, what, _) in LEG_CONTEXTS.items():
            context = getattr(cfg.dial, key)
            legs += trunk_leg_line(context, show, key=key)
            if context and global_var(marker) != context:
                legs.append(("WARN", f"dialplan: the {marker} global does not name {context}: the "
                                     f"service dials {what} straight to their endpoint and their CDR "
                                     "rows say dst = s (docs/configuration.md)"))
        legs += connected_line_line(global_var("C2D_CONNECTED_LINE_SUB"), show)
        legs += native_call_line(cfg.dial, global_var("C2D_NATIVE_CALL"), show)
    except (OSError, ValueError) as exc:
        return [("WARN", f"dialplan: not checked, the Asterisk CLI did not answer ({exc})")]
    except Exception as exc:  # noqa: BLE001 - subprocess.TimeoutExpired and kin, one line
        return [("WARN", f"dialplan: not checked, the Asterisk CLI did not answer ({type(exc).__name__})")]
    return judge(contexts, agent_contexts, cfg.ari.app, routes) + legs


def trunk_leg_line(context: str, show: Callable[[str], str], number: str = SAMPLE_CALLEE,
                   key: str = "trunk_leg_context") -> list[tuple[str, str]]:
    """The line of ``[dial] key`` (``trunk_leg_context`` or ``agent_leg_context``,
    ADR 0014): FAIL when that context is missing or does not ``Dial()`` for a
    customer's number; [] when it is "" (unused)."""
    if not context:
        return []
    _, what, shipped = LEG_CONTEXTS[key]
    steps = first_extension(show(f"dialplan show {number}@{context}"))
    if any(app.lower() == "dial" for app, _ in steps):
        return [("ok", f"dialplan: {what} are dialled from context {context} ([dial] {key})")]
    found = "does not exist in the dialplan" if not steps else "does not Dial() for a customer's number"
    return [("FAIL", f"dialplan: context {context} of [dial] {key} {found}: every one of the "
                     f"{what} would fail; merge [{shipped}] of our extensions.conf "
                     f"(docs/configuration.md), or set {key} = \"\"")]


def connected_line_line(context: str, show: Callable[[str], str]) -> list[tuple[str, str]]:
    """The line of the ``C2D_CONNECTED_LINE_SUB`` global (docs/decisions/0015).

    ``context``: the global's value. Unset: WARN (calls use Asterisk's
    conference mixer, which costs CPU for every second of every call). Set
    and naming a context that does not set the connected line: FAIL, since
    the service then bridges two-party and the trunk would be told the
    agent's identity (SPEC §3.7). Otherwise ok."""
    if not context:
        return [("WARN", "dialplan: no C2D_CONNECTED_LINE_SUB global: calls are bridged by Asterisk's "
                         "conference mixer, about 6 ms of its CPU per second of every call; merge "
                         "[c2d-connected-line] and the global (docs/configuration.md)")]
    steps = first_extension(show(f"dialplan show s@{context}"))
    if any(app.lower() == "set" and "connectedline(" in data.lower() for app, data in steps):
        return [("ok", f"dialplan: legs keep their connected line through [{context}] (two-party bridges)")]
    found = "does not exist in the dialplan" if not steps else "does not set CONNECTEDLINE"
    return [("FAIL", f"dialplan: context {context} of the C2D_CONNECTED_LINE_SUB global {found}: the "
                     "trunk would be told the agent's identity when a call is bridged; merge "
                     "[c2d-connected-line] of our extensions.conf, or remove the global "
                     "(docs/configuration.md)")]


def native_call_line(dial, marker: str, show: Callable[[str], str]) -> list[tuple[str, str]]:
    """The line of ``[dial] bridging = "dialplan"`` (docs/decisions/0018); [] with ``stasis``.

    ``dial``: the ``[dial]`` config; ``marker``: the ``C2D_NATIVE_CALL`` global's
    value. WARN when the service cannot bridge in the dialplan and falls back to
    its Stasis app: no ``agent_leg_context``, the global not ``1``; FAIL when the
    global is ``1`` but ``[c2d-native-call]`` or ``[c2d-native-trunk]`` (through
    which it rings the callee) does not dial a customer's number."""
    if dial.bridging != "dialplan":
        return []
    fallback = "REST calls are bridged in the Stasis app instead"
    if not dial.agent_leg_context:
        return [("WARN", f"dialplan: [dial] bridging = \"dialplan\" needs [dial] agent_leg_context: {fallback}")]
    if marker.strip() != "1":
        return [("WARN", "dialplan: [dial] bridging = \"dialplan\" but the C2D_NATIVE_CALL global is not 1: "
                         f"{fallback}; merge [c2d-native-call] and the global (docs/configuration.md)")]
    # [c2d-native-call] rings the callee through Local/<number>@c2d-native-trunk,
    # whose second half dials the trunk (and writes the callee's CDR row).
    for context, before, after in (("c2d-native-call", "the C2D_NATIVE_CALL global is 1 but ", ":"),
                                   ("c2d-native-trunk", "", ": [c2d-native-call] dials the callee through it, so")):
        steps = first_extension(show(f"dialplan show {SAMPLE_CALLEE}@{context}"))
        if not any(app.lower() == "dial" for app, _ in steps):
            return [("FAIL", f"dialplan: {before}context {context} "
                             + ("does not exist" if not steps else "does not Dial() a customer's number")
                             + f"{after} every REST call would fail once its agent answers; merge "
                               f"[{context}] of our extensions.conf (docs/configuration.md)")]
    return [("ok", "dialplan: REST calls are bridged by Asterisk in [c2d-native-call] ([dial] bridging)")]
