"""``platforma-c2d events [--follow]`` (SPEC §10): print the stored call events, one JSON line each.

Reads the store named in the config directly (``[store] url``), so it
works with the service stopped; ``--follow`` keeps printing new events
until interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from platforma_c2d import rules

POLL_S = 0.5


def cmd_events(args) -> int:
    """Print the events after ``--after`` (filtered by ``--call-id``, ``--agent``); 0 on success,
    1 when the store cannot be read, 2 for a bad option."""
    from platforma_c2d.cli import _load
    from platforma_c2d.store.journal import Journal, store_problem
    from platforma_c2d.store.outbox import Outbox, event_dict

    if args.agent is not None and not rules.is_agent(args.agent):
        print(f"error: --agent: must be {rules.AGENT_FORMATS}", file=sys.stderr)
        return 2
    if args.call_id is not None and not (len(args.call_id) == 32 and
                                         all(c in "0123456789abcdef" for c in args.call_id)):
        print("error: --call-id: must be 32 lowercase hex characters", file=sys.stderr)
        return 2
    cfg = _load(args.config, quiet=True)
    try:
        journal = Journal(cfg.store.url)
    except Exception as exc:  # noqa: BLE001 - any reason, in one line
        print(f"error: store.url: cannot open the call journal ({store_problem(cfg.store.url, exc)})",
              file=sys.stderr)
        return 1
    outbox, cursor = Outbox(journal.engine), args.after
    agents = (args.agent,) if args.agent else ()
    try:
        while True:
            rows = outbox.read(cursor, 500, args.call_id, agents)
            for row in rows:
                print(json.dumps(event_dict(row), separators=(",", ":")), flush=True)
                cursor = row["id"]
            if len(rows) == 500:
                continue
            if not args.follow:
                return 0
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:          # | head: the reader is gone
        return 0
    finally:
        journal.close()


def add_events_parser(sub) -> None:
    """Add ``events`` to the ``platforma-c2d`` sub-commands."""
    sp = sub.add_parser("events", help="print the stored call events (one JSON line each)")
    sp.add_argument("--config", help="TOML config file (or PLATFORMA_C2D_CONFIG): [store] url")
    sp.add_argument("--after", type=_event_id, default=0, help="only events with a larger id (default 0)")
    sp.add_argument("--call-id", help="only this call's events")
    sp.add_argument("--agent", help="only the events of this agent's calls")
    sp.add_argument("--follow", "-f", action="store_true", help="keep printing new events until Ctrl-C")
    sp.set_defaults(func=cmd_events)


def _event_id(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise argparse.ArgumentTypeError("an event id (digits)")
    return int(text)
