"""Loads heal what an earlier try left, through the load task's code path (`run_load`), on real
Postgres and the loopback RedTrack stand-in: a killed load is finished by the next try in the
same folder, an extracted-only package is dropped and re-extracted, a worker with an empty
folder loads exactly what a clean run does (state from the destination) and a superseded
package left on the first worker is dropped later, a poison package stops at once.

(The same crash points under a real scheduler and two Celery workers: tests/test_celery.py.)"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from signalroom.destinations import data_dir
from tests.support.api import fast_retries
from tests.support.dagrun import table_dumps
from tests.support.maintenance import (
    PIPELINE,
    expected_keys,
    extract,
    kill_load_midway,
    load,
    postgres,
    rows,
    start_standin,
)

D1, D2 = date(2025, 3, 10), date(2025, 3, 12)
ORPHANS = """SELECT count(*) FROM redtrack.daily_spend t
             LEFT JOIN redtrack._dlt_loads l ON l.load_id = t._dlt_load_id WHERE l.load_id IS NULL"""


@pytest.fixture
def env(monkeypatch, dlt_data_dir, pg_database):
    fast_retries(monkeypatch)
    standin = start_standin()
    yield pg_database, postgres(pg_database), standin
    standin.stop()


def clean_dump(standin, postgres_server, tmp_path, monkeypatch) -> dict:
    """The same two loads without a crash, in a database and folder of their own."""
    import uuid

    import psycopg2

    name = f"sr_clean_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(postgres_server.url())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "clean-dlt"))
        destination = postgres(postgres_server.url(name))
        load(standin, destination, D1)
        load(standin, destination, D2)
        return table_dumps(destination.postgres_url, "redtrack")
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def assert_complete(url: str, standin) -> None:
    counts = dict(rows(url, "SELECT date, count(*) FROM redtrack.daily_spend GROUP BY 1"))
    window = [D1 - timedelta(days=2) + timedelta(days=i) for i in range((D2 - D1).days + 3)]
    assert counts == {day: expected_keys(standin, day) for day in window}
    assert rows(url, ORPHANS) == [(0,)]


def test_killed_load_is_finished_by_the_next_try_in_the_same_folder(env, postgres_server, tmp_path, monkeypatch):
    url, destination, standin = env
    load(standin, destination, D1)
    partial = kill_load_midway(standin, destination, D2)

    retry = load(standin, destination, D2)
    assert retry["healed"]["finished"] == [partial] and retry["healed"]["dropped"] == {}
    assert retry["load_ids"] and partial not in retry["load_ids"]
    assert_complete(url, standin)
    dump = table_dumps(url, "redtrack")
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "unused"))
    assert dump == clean_dump(standin, postgres_server, tmp_path, monkeypatch)


def test_extracted_only_package_is_dropped_and_the_window_extracted_again(env):
    url, destination, standin = env
    load(standin, destination, D1)
    extract(standin, destination, D2, normalize=False)  # killed between extract and normalize
    standin.reset_requests()

    retry = load(standin, destination, D2)
    (dropped, why), = retry["healed"]["dropped"].items()
    assert "extracted only" in why and retry["healed"]["finished"] == []
    assert standin.report_requests("redtrack"), "the retry must read the source again"
    assert retry["cursor_after"]["incremental.date"]["last_value"] == D2.isoformat()
    assert_complete(url, standin)


def test_empty_folder_loads_what_a_clean_run_does_and_the_left_package_is_dropped_later(
    env, tmp_path, monkeypatch
):
    url, destination, standin = env
    worker_a = tmp_path / "worker-a"
    monkeypatch.setenv("DLT_DATA_DIR", str(worker_a))
    load(standin, destination, D1)
    partial = kill_load_midway(standin, destination, D2)

    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "worker-b"))  # never saw the pipeline
    retry = load(standin, destination, D2)
    assert retry["healed"] == {"finished": [], "dropped": {}}
    assert retry["cursor_before"]["incremental.date"]["last_value"] == D1.isoformat()  # from the destination
    assert_complete(url, standin)
    before = table_dumps(url, "redtrack")

    monkeypatch.setenv("DLT_DATA_DIR", str(worker_a))  # the next load lands on the first worker
    later = load(standin, destination, D2)
    assert list(later["healed"]["dropped"]) == [partial]
    assert "superseded" in later["healed"]["dropped"][partial]
    assert_complete(url, standin)
    assert table_dumps(url, "redtrack") == before


def test_poison_package_stops_at_once_and_loads_after_the_cause_is_fixed_and_dropped(env):
    from signalroom.healing import PoisonPackageError
    from signalroom.hints import match_hint
    from signalroom.maintenance import drop_pending

    url, destination, standin = env
    load(standin, destination, D1)
    import psycopg2

    conn = psycopg2.connect(destination.postgres_url)
    conn.autocommit = True
    with conn.cursor() as cur:  # the warehouse now refuses every row: a terminal failure
        cur.execute("ALTER TABLE redtrack.daily_spend ADD CONSTRAINT no_rows CHECK (clicks < 0) NOT VALID")
    with pytest.raises(PoisonPackageError) as first:
        load(standin, destination, D2)
    message = str(first.value)
    assert PIPELINE in message and first.value.load_id in message and "signalroom_maintenance" in message
    assert "action=drop" in message and "no_rows" in message, message
    assert match_hint(message).key == "poison_package"

    with pytest.raises(PoisonPackageError) as again:  # the next try: once, at once, no loop
        load(standin, destination, D2)
    # it could not finish the first package, dropped it, and fresh data failed the same way
    assert again.value.load_id != first.value.load_id
    pending = data_dir() / "pipelines" / PIPELINE / "load" / "normalized"
    assert first.value.load_id not in [p.name for p in pending.iterdir()]

    with conn.cursor() as cur:  # the on-call fixes the cause, then drops the package
        cur.execute("ALTER TABLE redtrack.daily_spend DROP CONSTRAINT no_rows")
    conn.close()
    report = drop_pending(PIPELINE, destination, with_partial_loads=True, dry_run=False)
    assert first.value.load_id not in report.dropped and not report.still_pending
    fresh = load(standin, destination, D2)
    assert fresh["healed"] == {"finished": [], "dropped": {}}
    assert_complete(url, standin)
