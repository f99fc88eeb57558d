"""The daily_performance model: the seed's reading rules, and the whole DAG (`dag.test()`: the
seed into the mapping table, the view, the common-sql checks, the published asset) on a small
fixture whose expected rows are computed by hand, on real Postgres and on a DuckDB file.

The fixture uses source ids of the repository's seed (include/signalroom/reporting/seeds):
  da23ba... -> "G2 - Meta" / 11        530064... -> "SB - Google " (trailing space) / 25
  c31f64... -> "BHS" / 39 (not internal) 9b090f... -> "G2 - Google" / 11
  1428b7... -> "G2 - Google" / 18      398ab5... -> "BHS" / n/a (attributes to no row)
and one source with no mapping row.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from signalroom.reporting.seed import SeedError, parse_mapping, read_mapping

D1, D2 = date(2025, 6, 2), date(2025, 6, 3)
G2_META, SB_GOOGLE, BHS_39 = "da23ba086e72e25d0b49b306", "530064f7fa9fe5ca2c0a9d6a", "c31f6450fd3b17944cf56c66"
G2_GOOGLE_11, G2_GOOGLE_18, BHS_NA = "9b090fb2eaa2d268060ade13", "1428b7393eab1ce90ddd912d", "398ab59011bde5b7a3309c5d"
UNMAPPED = "ffffffffffffffffffffffff"

# date, affiliate_id, affiliate_label, advertiser_id, advertiser_label, clicks, conversions, revenue, payout
EVERFLOW = [
    (D1, 1000, "G2 - Meta", 11, "Acme Health", 100, 4, "200.00", "120.00"),
    (D1, 1039, "SB - Google", 25, "Cobalt Insure", 50, 0, "0", "0"),  # internal, no conversions
    (D1, 1100, "Partner A01", 18, "Brightline", 70, 3, "60.00", "45.00"),  # external
    (D1, 1200, "BHS", 39, "Evergreen Solar", 90, 7, "99.00", "70.10"),  # mapped, not internal
    (D2, 1013, "G2 - Google", 11, "Acme Health", 30, 2, "20.00", "10.00"),
    (D2, 1026, "G2 - Google  ", 11, "Acme Health", 10, 1, "10.00", "5.00"),  # same label, trimmed
    (D2, 1013, "G2 - Google", 18, "Brightline", 40, 5, "80.00", "50.00"),
    (D2, 1300, "Partner B02", 32, "Delta Finance", 5, 0, "0", "0"),  # external, no conversions
    (D2, 1052, "SB - Meta", 25, "Cobalt Insure", 20, 2, "40.00", "30.00"),  # internal, no spend
]
# date, source_id, clicks, cost
REDTRACK = [
    (D1, G2_META, 300, "90.50"),
    (D1, SB_GOOGLE, 80, "40.00"),
    (D1, BHS_39, 20, "10.00"),
    (D1, BHS_NA, 9, "5.00"),
    (D1, UNMAPPED, 11, "59.50"),
    (D2, G2_GOOGLE_11, 60, "33.33"),
    (D2, G2_GOOGLE_18, 25, "12.00"),
]
# by hand: date, advertiser_id, advertiser_label, affiliate_label, conversions, everflow_payout,
# everflow_revenue, redtrack_cost, redtrack_clicks, is_internal, cost, cpa
EXPECTED = sorted([
    (D1, 11, "Acme Health", "G2 - Meta", 4, "120.00", "200.00", "90.50", 300, True, "90.50", "22.63"),
    (D1, 25, "Cobalt Insure", "SB - Google", 0, "0", "0", "40.00", 80, True, "40.00", "0"),
    (D1, 18, "Brightline", "Partner A01", 3, "45.00", "60.00", "0", 0, False, "45.00", "15.00"),
    (D1, 39, "Evergreen Solar", "BHS", 7, "70.10", "99.00", "10.00", 20, False, "70.10", "10.01"),
    (D2, 11, "Acme Health", "G2 - Google", 3, "15.00", "30.00", "33.33", 60, True, "33.33", "11.11"),
    (D2, 18, "Brightline", "G2 - Google", 5, "50.00", "80.00", "12.00", 25, True, "12.00", "2.40"),
    (D2, 32, "Delta Finance", "Partner B02", 0, "0", "0", "0", 0, False, "0", "0"),
    (D2, 25, "Cobalt Insure", "SB - Meta", 2, "30.00", "40.00", "0", 0, True, "0", "0"),
], key=repr)
# D1: 59.50 of 205.00 has no mapping row (the n/a-advertiser source is mapped); D2: none
UNMAPPED_SHARE = {D1: Decimal("0.2902"), D2: Decimal("0")}
VIEW_COLUMNS = ("date, advertiser_id, advertiser_label, affiliate_label, conversions, everflow_payout, "
                "everflow_revenue, redtrack_cost, redtrack_clicks, is_internal, cost, cpa, is_provisional")

EVERFLOW_DDL = ("CREATE TABLE everflow.daily_stats (date DATE NOT NULL, affiliate_id BIGINT NOT NULL, "
                "affiliate_label TEXT, advertiser_id BIGINT NOT NULL, advertiser_label TEXT, clicks BIGINT, "
                "conversions BIGINT, revenue NUMERIC(18,4), payout NUMERIC(18,4), profit NUMERIC(18,4), "
                "_client_id TEXT NOT NULL)")
REDTRACK_DDL = ("CREATE TABLE redtrack.daily_spend (date DATE NOT NULL, source_id TEXT NOT NULL, "
                "source_name TEXT, source_alias TEXT, clicks BIGINT, conversions BIGINT, cost NUMERIC(18,4), "
                "_client_id TEXT NOT NULL)")


def _fixture_statements() -> list[tuple[str, tuple]]:
    out: list[tuple[str, tuple]] = [("CREATE SCHEMA everflow", ()), ("CREATE SCHEMA redtrack", ()),
                                    (EVERFLOW_DDL, ()), (REDTRACK_DDL, ())]
    for d, aff, label, adv, adv_label, clicks, cv, revenue, payout in EVERFLOW:
        out.append(("INSERT INTO everflow.daily_stats VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, '713')",
                    (d, aff, label, adv, adv_label, clicks, cv, revenue, payout, str(Decimal(revenue) - Decimal(payout)))))
    for d, source, clicks, cost in REDTRACK:
        out.append(("INSERT INTO redtrack.daily_spend VALUES (%s, %s, 'src', NULL, %s, 0, %s, '713')",
                    (d, source, clicks, cost)))
    return out


def _normal(rows) -> list[tuple]:
    """Rows as comparable tuples: money as Decimal, whatever the driver returned."""
    out = []
    for r in rows:
        out.append((r[0], int(r[1]), r[2], r[3], int(r[4]), Decimal(str(r[5])), Decimal(str(r[6])),
                    Decimal(str(r[7])), int(r[8]), bool(r[9]), Decimal(str(r[10])), Decimal(str(r[11])),
                    bool(r[12]) if len(r) > 12 else False))
    return sorted(out, key=lambda r: (r[0], r[1], r[3]))


def _expected() -> list[tuple]:
    return _normal(EXPECTED)


# ------------------------------------------------------------------------------ the seed


def test_the_repository_seed_reads_as_the_business_writes_it():
    raw = (Path(read_mapping("affiliate_mapping.csv").path)).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw and b"n/a" in raw
    seed = read_mapping("affiliate_mapping.csv")
    assert len(seed.rows) == 20
    by_source = {row[2]: row for row in seed.rows}
    assert by_source[SB_GOOGLE][4] == "SB - Google "  # trailing space kept as written
    assert by_source[BHS_NA][5:] == (None, None)  # n/a advertiser id and label
    assert by_source[G2_META][0:2] == ("Facebook - G2", None)  # n/a alias
    assert all(isinstance(r[3], int) or r[3] is None for r in seed.rows)


@pytest.mark.parametrize("text, message", [
    ("redtrack.source,redtrack.source_id\r\nx,y\r\n", "header lacks redtrack.source_alias"),
    ("", "the file is empty"),
])
def test_a_seed_without_the_columns_is_refused_naming_them(text, message):
    with pytest.raises(SeedError, match=message):
        parse_mapping(text, Path("mapping.csv"))


HEADER = ("redtrack.source,redtrack.source_alias,redtrack.source_id,everflow.affiliate_id,"
          "everflow.affiliate_label,everflow.advertiser_id,everflow.advertiser_label\r\n")


@pytest.mark.parametrize("body, message", [
    ("a,b,s1,1,L,11,A\r\na,b,s1,1,M,12,B\r\n", r"line 3: redtrack.source_id 's1' is already mapped on line 2"),
    ("a,b,s1,1,L,eleven,A\r\n", r"line 2: everflow.advertiser_id is 'eleven', not a whole number"),
    ("a,b,s1,1,n/a,11,A\r\n", r"line 2: everflow.affiliate_label is missing"),
    ("a,b,s1,1,L\r\n", r"line 2: 5 fields, the header has 7"),
])
def test_a_bad_seed_row_is_refused_with_its_line_and_the_fix(body, message):
    with pytest.raises(SeedError, match=message):
        parse_mapping(HEADER + body, Path("mapping.csv"))


# ------------------------------------------------------------------------------ the DAG


def _run_model_dag(monkeypatch, env: dict[str, str]):
    from signalroom.orchestration.reporting import build_all_model_dags

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    dag = build_all_model_dags()["signalroom_daily_performance"]
    run = dag.test()
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    return run, states


def _published(run) -> dict[str, dict]:
    from tests.support.dagrun import asset_events_of

    return {uri: extra for uri, task, extra, aliases in asset_events_of(run.dag_id, run.run_id)
            if task == "publish" and aliases == ("reporting.daily_performance",)}


def test_daily_performance_on_postgres_row_by_row(airflow_db, pg_database, monkeypatch, capfd):
    from tests.support import db

    conn = db.connect(pg_database)
    with conn, conn.cursor() as cur:
        for statement, params in _fixture_statements():
            cur.execute(statement, params)
    conn.close()
    run, states = _run_model_dag(monkeypatch, db.warehouse_connection_env(pg_database))
    assert set(states.values()) == {"success"}, states

    assert _normal(db.query(pg_database, f"SELECT {VIEW_COLUMNS} FROM public.daily_performance")) == _expected()
    mapping = db.query(pg_database, "SELECT everflow_affiliate_label, everflow_advertiser_id FROM "
                                    "public.affiliate_mapping WHERE redtrack_source_id = %s", (SB_GOOGLE,))
    assert mapping == [("SB - Google ", 25)]
    assert db.query(pg_database, "SELECT count(*) FROM public.affiliate_mapping") == [(20,)]

    from signalroom.registry import MODELS
    from signalroom.reporting import sql

    shares = {d: s for d, _, _, s in db.query(pg_database, sql.unmapped_spend_by_day_sql(MODELS["daily_performance"]))}
    assert shares == UNMAPPED_SHARE
    # the reconciliation warned (29 % > 5 %) without failing the run
    out = capfd.readouterr().out
    assert "WARNING (does not fail the run) check_unmapped_spend" in out
    assert f"{D1}, 205.0000, 59.5000, 0.2902" in out  # the day's spend, unmapped spend and share

    host = json.loads(db.warehouse_connection_env(pg_database)["AIRFLOW_CONN_SIGNALROOM_WAREHOUSE"])
    base = f"postgres://{host['host']}:{host['port']}/{host['schema']}/public"
    published = _published(run)
    assert set(published) == {f"{base}/daily_performance", f"{base}/affiliate_mapping"}
    view = published[f"{base}/daily_performance"]
    assert (view["rows"], view["dates"], view["mapping_rows"]) == (8, f"{D1} .. {D2}", 20)

    # a rerun leaves the same rows (the mapping is replaced, not appended)
    run2, states2 = _run_model_dag(monkeypatch, {})
    assert set(states2.values()) == {"success"}
    assert db.query(pg_database, "SELECT count(*) FROM public.affiliate_mapping") == [(20,)]
    assert _normal(db.query(pg_database, f"SELECT {VIEW_COLUMNS} FROM public.daily_performance")) == _expected()

    # today (intraday numbers) and the days the next daily run re-reads (look-back 3) are provisional
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    today = datetime.now(ZoneInfo("America/New_York")).date()
    for back in (0, 3, 4):
        db.query(pg_database, "INSERT INTO everflow.daily_stats VALUES (%s, 7, 'Partner P', 99, 'Adv', 1, 1, 1, 1, 0, '713')",
                 (today - timedelta(days=back),))
    provisional = dict(db.query(pg_database, "SELECT date, is_provisional FROM public.daily_performance "
                                             "WHERE advertiser_id = 99"))
    assert provisional == {today: True, today - timedelta(days=3): True, today - timedelta(days=4): False}


def test_a_broken_row_fails_the_check_naming_it(airflow_db, pg_database, monkeypatch):
    from tests.support import db

    conn = db.connect(pg_database)
    with conn, conn.cursor() as cur:
        for statement, params in _fixture_statements():
            cur.execute(statement, params)
        # a negative payout (a chargeback booked as payout): cost < 0 for an external affiliate
        cur.execute("UPDATE everflow.daily_stats SET payout = -5 WHERE affiliate_label = 'Partner A01'")
    conn.close()
    run, states = _run_model_dag(monkeypatch, db.warehouse_connection_env(pg_database))
    assert states["check_cost_and_cpa"] == "failed" and states["check_unique_rows"] == "success"
    assert states["publish"] == "upstream_failed"
    assert _published(run) == {}


def test_daily_performance_on_duckdb_gives_the_same_rows(airflow_db, tmp_path, monkeypatch):
    import duckdb

    from tools.localenv import airflow_connection_env

    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        for statement, params in _fixture_statements():
            con.execute(statement.replace("%s", "?"), params)
    run, states = _run_model_dag(
        monkeypatch, airflow_connection_env("signalroom_warehouse", {"conn_type": "duckdb", "host": str(path)}))
    assert set(states.values()) == {"success"}, states
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(f"SELECT {VIEW_COLUMNS} FROM public.daily_performance").fetchall()
    assert _normal(rows) == _expected()
    assert set(_published(run)) == {f"duckdb://localhost{path}/public/daily_performance",
                                    f"duckdb://localhost{path}/public/affiliate_mapping"}
