"""P2: 200k rows x 129 columns of export CSV (10 files) into Postgres through the s3_exports
source, against plain `COPY` of the same files into an all-text table, in the same run.

The source run is the production path: `pipeline.run_load` (as the Airflow task calls it)
reading from the S3 stand-in (moto in its own process, so its CPU stays out of the loader),
with dlt's extract, normalize and merge-load (delete-insert on `_file_name`). Target <= 3x.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta

from _s3_bench import BUCKET, PREFIX, copy_baseline, postgres_database, private_env

TARGET = 3.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--files", type=int, default=10)
    args = parser.parse_args()

    tmp = private_env("p2")
    from signalroom.destinations import DestinationConfig
    from signalroom.pipeline import Window, run_load
    from tools.standins.exports import header, write_exports
    from tools.standins.s3 import S3Process

    days = [date(2025, 12, 1) + timedelta(days=i) for i in range(args.files)]
    files = write_exports(tmp / "exports", days, args.rows // args.files, prefixes=(PREFIX,))
    size_mb = sum(f.stat().st_size for f in files) / 1e6
    print(f"P2: {len(files)} files, {args.rows} rows x {len(header())} columns, {size_mb:.0f} MB of CSV")

    with postgres_database() as (url, cpu), S3Process() as s3:
        s3.create_bucket(BUCKET)
        s3.upload_folder(tmp / "exports", BUCKET)

        before = cpu.snapshot()
        copy_seconds, copy_rows = copy_baseline(url, files, header())
        copy_cpu = [b - a for a, b in zip(before, cpu.snapshot(), strict=True)]

        before = cpu.snapshot()
        started = time.perf_counter()
        summary = run_load(
            "s3_exports",
            PREFIX.replace("-", "_"),
            Window(end=days[-1]),
            DestinationConfig(kind="postgres", postgres_url=url),
            source_kwargs={**s3.source_kwargs(BUCKET), "prefixes": PREFIX},
        )
        source_seconds = time.perf_counter() - started
        source_cpu = [b - a for a, b in zip(before, cpu.snapshot(), strict=True)]

    loaded = sum(summary["rows"].values())
    ratio = source_seconds / copy_seconds
    cpu_ratio = sum(source_cpu) / sum(copy_cpu)
    print(f"  COPY baseline      {copy_seconds:7.2f} s wall, CPU loader/postgres "
          f"{copy_cpu[0]:.1f}/{copy_cpu[1]:.1f} s  ({copy_rows} rows)")
    print(f"  s3_exports source  {source_seconds:7.2f} s wall, CPU loader/postgres "
          f"{source_cpu[0]:.1f}/{source_cpu[1]:.1f} s  ({loaded} rows; extract/normalize/load "
          f"{summary['timings'].get('extract')}/{summary['timings'].get('normalize')}/"
          f"{summary['timings'].get('load')} s)")
    ok = ratio <= TARGET and loaded == copy_rows == args.rows
    print(f"P2 CPU ratio source/COPY = {cpu_ratio:.2f} (load-independent)")
    print(f"P2 ratio source/COPY = {ratio:.2f} wall (target <= {TARGET}) {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
