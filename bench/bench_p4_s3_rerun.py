"""P4: a scheduled s3_exports run that finds no new file, against the run that loaded them.

Ten realistic files (20k rows x 129 columns each) are loaded into Postgres by a first
scheduled run; the second run with the same bucket must take <= 10% of the first run's time
and open none of the old files. Reads are counted by the S3 stand-in itself (GETs per key,
moto in a thread of this process), so the count does not rely on the source's own word.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta

from _s3_bench import BUCKET, PREFIX, postgres_database, private_env

TARGET = 0.10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows per file")
    parser.add_argument("--files", type=int, default=10)
    args = parser.parse_args()

    tmp = private_env("p4")
    import dlt  # noqa: F401  - imported before timing: both runs pay the same, warm, process

    from signalroom.destinations import DestinationConfig
    from signalroom.pipeline import Window, run_load
    from tools.standins.exports import write_exports
    from tools.standins.s3 import S3Server

    days = [date(2025, 12, 1) + timedelta(days=i) for i in range(args.files)]
    write_exports(tmp / "exports", days, args.rows, prefixes=(PREFIX,))

    with postgres_database() as (url, _), S3Server() as s3:
        s3.create_bucket(BUCKET)
        keys = s3.upload_folder(tmp / "exports", BUCKET)

        def scheduled_run() -> tuple[float, dict, set[str]]:
            s3.reset_reads()
            started = time.perf_counter()
            summary = run_load(
                "s3_exports",
                PREFIX.replace("-", "_"),
                Window(end=days[-1]),
                DestinationConfig(kind="postgres", postgres_url=url),
                source_kwargs={**s3.source_kwargs(BUCKET), "prefixes": PREFIX},
            )
            return time.perf_counter() - started, summary, set(s3.reads())

        first_s, first, first_reads = scheduled_run()
        second_s, second, second_reads = scheduled_run()

    ratio = second_s / first_s
    print(f"P4: {len(keys)} files x {args.rows} rows")
    print(f"  first run   {first_s:7.2f} s  rows {sum(first['rows'].values())}, files read {len(first_reads)}")
    print(f"  second run  {second_s:7.2f} s  rows {sum(second['rows'].values())}, files read {len(second_reads)}"
          f" (extract/normalize/load {second['timings']})")
    ok = ratio <= TARGET and not second_reads and len(first_reads) == len(keys) and not second["rows"]
    print(f"P4 ratio second/first = {ratio:.3f} (target <= {TARGET}), old files read: {len(second_reads)} "
          f"{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
