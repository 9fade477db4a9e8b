"""CDR rows written by ``cdr_adaptive_odbc`` into a real PostgreSQL through
unixODBC, with the mapping and table that ``asterisk_conf/`` ships (SPEC §5).

The table is created from the DDL in the comment of the shipped
``cdr_adaptive_odbc.conf``, the connection is the shipped ``res_odbc.conf``
(role ``asterisk``), and the DSN is the ``odbc.ini`` of docs/cdr.md, pointed
at the test server's Unix socket. On the administrator-style configs the
administrator merges the same two files into their own.
"""

from __future__ import annotations

import re
import time

import pytest
import sqlalchemy as sa

from testbed.odbc import odbc_ready
from testbed.postgres import PostgresServer
from testbed.sipp import uac_scenario, uas_scenario
from tests.integration.test_rest_calls import cdr_rows_of

AGENT_PORT, TRUNK_PORT, PHONE_PORT = 5071, 5070, 5081
CONF = ("res_odbc.conf", "cdr_adaptive_odbc.conf")
MODULES = ("res_odbc.so", "cdr_adaptive_odbc.so")


def shipped_ddl(asterisk) -> list[str]:
    """The SQL statements in the comment of the shipped cdr_adaptive_odbc.conf."""
    from testbed.asterisk import CONF_DIR

    text = (CONF_DIR / "cdr_adaptive_odbc.conf").read_text()
    sql = "\n".join(line[1:].strip() for line in text.splitlines()
                    if line.startswith(";") and not line.startswith(";;"))
    statements = re.findall(r"((?:CREATE|GRANT)\b[^;]*;)", sql)
    assert any(s.startswith("CREATE TABLE cdr") for s in statements), statements
    return statements


@pytest.fixture(scope="module")
def cdr_database(asterisk):
    """A PostgreSQL database with the shipped CDR table, and Asterisk writing into it.

    The server's socket is inside the bench root, so Asterisk (chrooted)
    reaches it. Afterwards Asterisk runs its configs as before again.
    """
    if not odbc_ready(asterisk.root):
        pytest.fail("unixODBC and odbc-postgresql are not in the bench root: "
                    "run bash scripts/setup.sh (or scripts/test-isolated.sh), which installs them")
    base = asterisk.root / "var/tmp"
    base.mkdir(parents=True, exist_ok=True)
    server = PostgresServer(base=base).start()
    try:
        yield from _writing_into(asterisk, server)
    finally:
        server.stop()


def _writing_into(asterisk, server):
    """The body of ``cdr_database``: yields the database's engine."""
    url = server.url("postgres")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql('CREATE DATABASE asterisk')
    admin.dispose()
    db = sa.create_engine(server.url("asterisk"), isolation_level="AUTOCOMMIT")
    with db.connect() as conn:
        for statement in shipped_ddl(asterisk):
            conn.exec_driver_sql(statement)
    from testbed.asterisk import CONF_DIR

    (asterisk.root / "etc/odbc.ini").write_text(
        "[asterisk-cdr]\nDriver = PostgreSQL Unicode\n"
        f"Servername = /{server.dir.relative_to(asterisk.root)}\nPort = 5432\nDatabase = asterisk\n")
    shipped = {name: (CONF_DIR / name).read_text() for name in CONF}
    saved_extra = dict(asterisk.extra_files)
    if all(asterisk.ari.get(f"/asterisk/modules/{m}").status_code == 200 for m in MODULES):
        # Loaded at start-up already (the sample modules.conf autoloads them):
        # the administrator merges the two files and reloads.
        etc = asterisk.root / "etc/asterisk"
        before = {name: (etc / name).read_text() for name in CONF}
        for name, text in shipped.items():
            (etc / name).write_text(text)
        for module in MODULES:
            asterisk.cli(f"module reload {module}")
        restarted = False
    else:
        # Ours keeps them out (noload): docs/cdr.md says to remove those lines
        # and restart, since res_odbc cannot be loaded into a running
        # Asterisk without res_odbc_transaction.
        modules = (CONF_DIR / "modules.conf").read_text()
        modules = "\n".join(line for line in modules.splitlines()
                             if not re.match(r"noload\s*=\s*(res_odbc|cdr_adaptive_odbc)\.so", line))
        asterisk.extra_files = {**saved_extra, **shipped, "modules.conf": modules}
        asterisk.restart()
        restarted = True
    for module in MODULES:
        assert asterisk.ari.get(f"/asterisk/modules/{module}").json()["status"] == "Running", module
    yield db
    asterisk.extra_files = saved_extra
    if restarted:
        asterisk.restart()
    else:
        for name, text in before.items():
            (etc / name).write_text(text)
        for module in MODULES:
            asterisk.cli(f"module reload {module}")
    (asterisk.root / "etc/odbc.ini").unlink(missing_ok=True)
    db.dispose()


def sql_rows(db, call_id: str, count: int, timeout: float = 10.0) -> list[dict]:
    """The rows of ``call_id`` in the SQL table (waits for ``count``)."""
    deadline = time.monotonic() + timeout
    while True:
        with db.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(
                sa.text("SELECT * FROM cdr WHERE c2d_call_id = :id ORDER BY c2d_leg"), {"id": call_id})]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def completed_rest_call(service, sipp, call_ref: str) -> str:
    """A REST call of agent 1001 to 0215550100 that talks 1 s; asserts it completed,
    returns its id."""
    sipp("agent", AGENT_PORT, uas_scenario(ring_ms=200))
    sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=300, talk_ms=1000))
    r = service.post_call({"agent": "1001", "callee": "0215550100",
                           "outbound_id": "0215550199", "call_ref": call_ref})
    assert r.status_code == 201, r.text
    assert service.wait_state(r.json()["id"], "ended", timeout=15)["reason"] == "completed"
    return r.json()["id"]


@pytest.mark.admin_configs
def test_a_rest_call_lands_in_postgresql_with_call_ref_and_parties(asterisk, service, sipp, cdr_database):
    call_id = completed_rest_call(service, sipp, "ord-sql-1")
    rows = sql_rows(cdr_database, call_id, count=2)
    by_leg = {row["c2d_leg"]: row for row in rows}
    assert set(by_leg) == {"agent", "callee"}, rows
    for row in rows:
        assert row["call_ref"] == "ord-sql-1" and row["calldate"] is not None, row
    agent = by_leg["agent"]
    assert (agent["src"], agent["dst"], agent["disposition"]) == ("1001", "0215550100", "ANSWERED"), agent
    assert (by_leg["callee"]["src"], by_leg["callee"]["dst"]) == ("0215550199", "0215550100")  # CLID, number
    # The agent's row is the one of its leg's dialplan half (ADR 0014), Party B its phone.
    assert agent["channel"].startswith("Local/0215550100@c2d-agent-leg-") and agent["dstchannel"].startswith("PJSIP/1001-")
    # The same values as the CSV mapping writes for these rows (an empty
    # value is not written by cdr_adaptive_odbc: NULL).
    csv = {row["c2d_leg"]: row for row in cdr_rows_of(asterisk, call_id, count=2)}
    for leg, row in by_leg.items():
        for column in ("src", "dst", "dcontext", "channel", "dstchannel", "disposition",
                       "uniqueid", "linkedid", "call_ref"):
            assert (row[column] or "") == csv[leg][column], (leg, column, row, csv[leg])


@pytest.mark.admin_configs
def test_a_rest_call_bridged_in_the_dialplan_lands_in_postgresql_as_the_same_two_rows(
        asterisk, make_service, sipp, cdr_database):
    """``[dial] bridging = "dialplan"`` (ADR 0018): the callee's row is the ;2 of
    the Local channel through which the agent leg's ;1 dialled the trunk
    ([c2d-native-trunk]); the same columns as the CSV mapping writes."""
    call_id = completed_rest_call(make_service({"dial": {"bridging": "dialplan"}}), sipp, "ord-sql-n")
    rows = sql_rows(cdr_database, call_id, count=2)
    by_leg = {row["c2d_leg"]: row for row in rows}
    assert len(rows) == 2 and set(by_leg) == {"agent", "callee"}, rows
    agent, callee = by_leg["agent"], by_leg["callee"]
    assert (agent["src"], agent["dst"], agent["disposition"]) == ("1001", "0215550100", "ANSWERED"), agent
    assert (callee["src"], callee["dst"], callee["disposition"]) == ("0215550199", "0215550100", "ANSWERED")
    assert callee["channel"].startswith("Local/0215550100@c2d-native-trunk-") and callee["channel"].endswith(";2")
    assert callee["dstchannel"].startswith("PJSIP/trunk-"), callee
    assert {row["call_ref"] for row in rows} == {"ord-sql-n"}
    csv = {row["c2d_leg"]: row for row in cdr_rows_of(asterisk, call_id, count=2)}
    for leg, row in by_leg.items():
        for column in ("src", "dst", "channel", "dstchannel", "disposition", "call_ref"):
            assert (row[column] or "") == csv[leg][column], (leg, column, row, csv[leg])


@pytest.mark.admin_configs
def test_a_header_call_lands_in_postgresql_with_the_callee_in_dst(asterisk, service, sipp, cdr_database):
    sipp("trunk", TRUNK_PORT, uas_scenario(ring_ms=300))
    phone = sipp("phone", PHONE_PORT, uac_scenario(
        target="0215550100", from_user="2001", talk_ms=800,
        headers=["X-Platforma-Outbound-ID: 0215550199", "X-Platforma-Call-Ref: ord-sql-2"]),
        uac_target="127.0.0.1:5060", calls=1)
    assert phone.wait(timeout=20) == 0
    calls = service.http.get("/click2dial/calls").json()["calls"]
    call = service.wait_state(calls[0]["id"], "ended")
    assert call["reason"] == "completed", call
    rows = sql_rows(cdr_database, call["id"], count=2)
    by_leg = {row["c2d_leg"]: row for row in rows}
    assert set(by_leg) == {"agent", "callee"}, rows
    browser = by_leg["agent"]
    assert (browser["src"], browser["dst"], browser["call_ref"]) == ("2001", "0215550100", "ord-sql-2"), browser
    assert browser["channel"].startswith("PJSIP/2001-") and browser["dstchannel"].startswith("Local/0215550100@c2d-trunk-leg-")
    assert by_leg["callee"]["src"] == "0215550199" and by_leg["callee"]["call_ref"] == "ord-sql-2"
