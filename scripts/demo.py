"""The demo of ``scripts/demo.sh``: real calls through a real Asterisk.

Starts the bench Asterisk (the configs of asterisk_conf/), a SIPp phone for
agent 1001 and a SIPp PSTN trunk, runs ``platforma-c2d serve``, and places
calls with ``platforma-c2d call`` (which follows each call state by state).
Then prints the journal and the CDR rows, and stops everything.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testbed.asterisk import AsteriskBench, processes_in  # noqa: E402
from testbed.root import ensure_root  # noqa: E402
from testbed.service import ServiceProcess  # noqa: E402
from testbed.sipp import SippPeer, uas_scenario  # noqa: E402

SCENES = [
    ("agent answers, customer answers, talks 3 s, hangs up",
     dict(ring_ms=800, talk_ms=3000), ["1001", "0215550100", "--clid", "0215550199", "--ref", "order-1001"]),
    ("customer is busy: the agent hears the busy tone",
     dict(ring_ms=500, reject_code=486), ["1001", "0215550101", "--clid", "random", "--ref", "order-1002"]),
    ("international customer, CLID drawn from the pool",
     dict(ring_ms=500, talk_ms=2000), ["1001", "0044207946000", "--clid", "random", "--ref", "crm:case~77"]),
]


def banner(text: str) -> None:
    print("\n" + "=" * 78 + f"\n{text}\n" + "=" * 78, flush=True)


def ports_in_use() -> list[str]:
    """Which of the ports the demo's Asterisk, phones and service need are taken on 127.0.0.1."""
    taken = []
    for kind, port in (("tcp", 8088), ("udp", 5060), ("udp", 5070), ("udp", 5071)):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
        if kind == "tcp":   # a socket of an earlier run in TIME_WAIT is no owner
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            taken.append(f"{port}/{kind}")
        finally:
            sock.close()
    return taken


_OWN_ROOT = ("give it a root and a network namespace of its own: C2D_BENCH_ROOT=/var/cache/platforma-c2d/"
             "demo-root unshare -n sh -c 'ip link set lo up && .venv/bin/python scripts/demo.py' (a root "
             "that is not there yet is copied from the shared one first)")


def main() -> int:
    taken = ports_in_use()
    if taken:
        print(f"demo: ports {', '.join(taken)} on 127.0.0.1 are in use (another Asterisk or service?); "
              f"the demo needs them free. Stop what holds them, or {_OWN_ROOT}", file=sys.stderr)
        return 1
    root = ensure_root()
    busy = processes_in(root)
    if busy:
        # Starting would kill them: the bench frees its root before it starts.
        print(f"demo: the Asterisk root {root} is in use (processes {busy[:5]}: a test or benchmark "
              f"run?). Wait for it to end, or {_OWN_ROOT}", file=sys.stderr)
        return 1
    asterisk = AsteriskBench(root)
    peers: list[SippPeer] = []
    service = None
    try:
        banner("starting Asterisk 22 with asterisk_conf/ (+ bench addresses)")
        asterisk.start()
        print(asterisk.ari.get("/asterisk/info").json()["system"])
        work = Path(tempfile.mkdtemp(prefix="c2d-demo-"))
        service = ServiceProcess(work, {"dial": {"tone_s": 2}}).start()
        print(f"platforma-c2d serve is up at {service.url}; health: {service.http.get('/healthz').json()}")
        for title, trunk_behaviour, args in SCENES:
            banner(f"call: {title}")
            agent = SippPeer(root, "demo-agent", 5071, uas_scenario(ring_ms=600))
            trunk = SippPeer(root, "demo-trunk", 5070, uas_scenario(**trunk_behaviour))
            peers += [agent, trunk]
            cmd = [sys.executable, "-m", "platforma_c2d.cli", "call", *args, "--url", service.url,
                   "--timeout", "30"]
            print("$ platforma-c2d call " + " ".join(args), flush=True)
            subprocess.run(cmd, cwd=REPO)
            asterisk.wait_idle()
            invites = trunk.received("INVITE")
            if invites:
                msg = invites[0]
                print("the trunk received:", msg.first_line)
                print("   From:", msg.header("From")[0])
                print("   P-Asserted-Identity:", ", ".join(msg.header("P-Asserted-Identity")))
            agent.stop()
            trunk.stop()
        time.sleep(1)
        banner("journal: GET /click2dial/calls")
        for call in service.http.get("/click2dial/calls").json()["calls"]:
            print(f"{call['created_at']}  {call['agent']} -> {call['callee']}  clid={call['clid']}  "
                  f"ref={call['call_ref']}  {call['state']}/{call['reason']}  talk={call['duration_s']} s")
        banner(f"CDR rows (cdr_custom: {root}/var/log/asterisk/cdr-custom/platforma-c2d.csv)")
        for row in asterisk.cdr_rows():
            print(f"{row['start']}  {row['channel']:<24} -> {row['dstchannel']:<24} "
                  f"src={row['src']} dst={row['dst']}  "
                  f"{row['disposition']:<9} billsec={row['billsec']:<3} call_ref={row['call_ref']}")
        left = asterisk.channels(), asterisk.bridges()
        banner(f"left in Asterisk: {len(left[0])} channels, {len(left[1])} bridges")
        return 0 if left == ([], []) else 1
    finally:
        for peer in peers:
            peer.stop()
        if service is not None:
            service.stop()
        asterisk.stop()


if __name__ == "__main__":
    sys.exit(main())
