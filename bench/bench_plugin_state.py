"""Plugin state reads: cost of showing a pipeline's state vs dlt's own restore, on Postgres.

Setup: a real RedTrack load (loopback stand-in) into a fresh Postgres database, then the table
is inflated with synthetic rows of an older load and a newer `_dlt_loads` row of *another*
pipeline of the dataset is added (as the three s3_exports pipelines share one dataset): the
worst case for attributing the last load, whose EXISTS then scans the whole table.

Measured in the same run (medians), each a ratio against its baseline:
- S1 `read_pipeline_state` (what the page, API, task and CLI run) vs dlt's own way to see the
  state from another process: a fresh working folder + `sync_destination()`;
- S2 the decode plus the last-load lookup (one-pipeline dataset; shared dataset) vs dlt's bare
  state query (`get_stored_state`), on the inflated table: the lookup must not scan it;
- S3 the page's `read_states` of every registered pipeline vs one `read_pipeline_state` each.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "include")]
from tools import localenv  # noqa: E402

ROWS = 300_000


def median_seconds(fn, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main(rounds: int = 7) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-plugin-"))
    localenv.apply(tmp / "airflow", tmp / "dlt")
    import psycopg2

    from signalroom.destinations import DestinationConfig
    from signalroom.pipeline import Window, run_load
    from signalroom.registry import registered_pipelines
    from signalroom.state import PipelineState, _read_one, read_pipeline_state, read_states
    from tools.standins.api import ApiStandin
    from tools.standins.postgres import find_or_start

    server = find_or_start()
    name = f"bench_plugin_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(server.url())
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        url = server.url(name)  # dlt requires a password; trust-auth servers ignore it
        destination = DestinationConfig(kind="postgres", postgres_url=url if server.password else
                                        url.replace(f"{server.user}@", f"{server.user}:trust@", 1))
        with ApiStandin(redtrack_key="bench-key") as standin:
            standin.rate_limit_interval = 0.05
            run_load("redtrack", "daily_spend", Window(end=date(2025, 5, 10)), destination,
                     source_kwargs={"api_key": "bench-key", "base_url": standin.url, "request_interval": 0.06})
        conn = psycopg2.connect(destination.postgres_url)
        with conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO redtrack.daily_spend (date, source_id, source_name, clicks, conversions, cost,"
                " _client_id, _dlt_load_id, _dlt_id) SELECT date '2024-01-01' + (g % 365), md5(g::text),"
                " 'synthetic', g % 100, g % 7, 1.5, '713', '1700000000.0', md5('id' || g) "
                f"FROM generate_series(1, {ROWS}) g"
            )
            cur.execute(
                "INSERT INTO redtrack._dlt_loads (load_id, schema_name, status, inserted_at, schema_version_hash)"
                " VALUES ('9999999999.0', 'redtrack', 0, now(), 'other-pipeline')"
            )
            cur.execute("ANALYZE redtrack.daily_spend")
        conn.close()

        def dlt_restore() -> None:
            import dlt

            folder = tempfile.mkdtemp(dir=tmp)
            p = dlt.pipeline("redtrack__daily_spend", destination=destination.to_dlt(), dataset_name="redtrack",
                             pipelines_dir=folder)
            p.sync_destination()
            assert p.state["sources"]["redtrack"]

        def ours() -> None:
            assert read_pipeline_state("redtrack__daily_spend", destination).found

        import dlt
        from dlt.dataset.utils import get_destination_clients

        client = get_destination_clients(dlt.Schema("redtrack"), destination=destination.to_dlt(),
                                         destination_dataset_name="redtrack")[0]
        client.__enter__()

        def state_only() -> None:
            assert client.get_stored_state("redtrack__daily_spend") is not None

        def with_last_load(shared: bool) -> None:
            result = PipelineState("redtrack__daily_spend", "redtrack", "daily_spend", "redtrack", "-")
            _read_one(client, result, shared)
            assert result.last_load is not None

        names = list(registered_pipelines())

        def page() -> None:
            read_states(names, destination)

        def one_by_one() -> None:
            for n in names:
                read_pipeline_state(n, destination)

        ours(), dlt_restore(), state_only(), with_last_load(True), page()  # warm imports and caches
        s1_base, s1 = median_seconds(dlt_restore, rounds), median_seconds(ours, rounds)
        s2_base = median_seconds(state_only, rounds)
        s2 = median_seconds(lambda: with_last_load(False), rounds)
        s2_shared = median_seconds(lambda: with_last_load(True), rounds)
        s3_base, s3 = median_seconds(one_by_one, rounds), median_seconds(page, rounds)
        client.__exit__(None, None, None)

        print(f"S1 read_pipeline_state {s1 * 1000:.0f} ms vs dlt fresh folder + sync_destination "
              f"{s1_base * 1000:.0f} ms: ratio {s1 / s1_base:.2f} (median of {rounds})")
        print(f"S2 decode + last load {s2 * 1000:.1f} ms (shared dataset {s2_shared * 1000:.1f} ms) vs dlt's "
              f"state query {s2_base * 1000:.1f} ms, table of {ROWS:,} rows: ratio {s2 / s2_base:.2f} "
              f"(shared {s2_shared / s2_base:.2f})")
        print(f"S3 page of {len(names)} pipelines {s3 * 1000:.0f} ms vs one read each {s3_base * 1000:.0f} ms: "
              f"ratio {s3 / s3_base:.2f}")
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        server.stop()


if __name__ == "__main__":
    main()
