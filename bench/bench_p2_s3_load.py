"""P2: 200k rows x 129 columns of export CSV (10 files) into Postgres through the s3_exports
source, against plain `COPY` of the same files into an all-text table, in the same run.

The source run is the production path: `pipeline.run_load` (as the Airflow task calls it)
reading from the S3 stand-in (moto in its own process) or, with `--local`, a file:// bucket,
with dlt's extract, normalize and load (append for new files, delete-insert on `_file_name`
when a file is reloaded). Targets: <= 1.5x the wall time and <= 1.5x the CPU (loader +
Postgres) of COPY, medians.

Each round loads into a fresh database with a fresh dlt working folder, COPY first, on a
private Postgres. The machine is shared and its load swings, so wall ratios are taken per
round (baseline and source back to back) and the median is the figure; CPU seconds of
loader + Postgres are printed too, as the load-independent cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import date, timedelta

from _s3_bench import BUCKET, PREFIX, copy_baseline, postgres_server, private_env

TARGET = 1.5  # wall and CPU (issue 14)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write-processes", type=int, default=None,
                        help="exports checked at once (default: settings.WRITE_PROCESSES; 1 = in the loader's process)")
    parser.add_argument("--local", action="store_true",
                        help="read the files from a file:// bucket instead of the S3 stand-in")
    args = parser.parse_args()

    tmp = private_env("p2")
    import dlt  # noqa: F401  - imported before timing: a load, not Python's imports, is measured

    from signalroom.destinations import DestinationConfig
    from signalroom.pipeline import Window, run_load
    from signalroom.sources.s3_exports import settings
    from tools.standins.exports import header, write_exports
    from tools.standins.s3 import S3Process

    days = [date(2025, 12, 1) + timedelta(days=i) for i in range(args.files)]
    files = write_exports(tmp / "exports", days, args.rows // args.files, prefixes=(PREFIX,))
    size_mb = sum(f.stat().st_size for f in files) / 1e6
    where = "file:// bucket" if args.local else "S3 stand-in"
    print(f"P2: {len(files)} files, {args.rows} rows x {len(header())} columns, {size_mb:.0f} MB of CSV, "
          f"source reads from the {where}, {args.write_processes or settings.WRITE_PROCESSES} export(s) checked at once")

    walls, cpus = [], []
    with postgres_server() as (new_database, cpu), S3Process() as s3:
        s3.create_bucket(BUCKET)
        s3.upload_folder(tmp / "exports", BUCKET)
        bucket = {"bucket_url": (tmp / "exports").as_uri()} if args.local else s3.source_kwargs(BUCKET)

        for n in range(1, args.rounds + 1):
            url = new_database(f"round{n}")
            os.environ["DLT_DATA_DIR"] = str(tmp / f"dlt{n}")

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
                source_kwargs={**bucket, "prefixes": PREFIX, "write_processes": args.write_processes},
            )
            source_seconds = time.perf_counter() - started
            source_cpu = [b - a for a, b in zip(before, cpu.snapshot(), strict=True)]

            loaded = sum(summary["rows"].values())
            if not loaded == copy_rows == args.rows:
                print(f"FAIL: rows loaded {loaded}, copied {copy_rows}, expected {args.rows}")
                return 1
            walls.append(source_seconds / copy_seconds)
            cpus.append(sum(source_cpu) / sum(copy_cpu))
            t = summary["timings"]
            print(f"  round {n}: COPY {copy_seconds:5.2f} s (CPU pg {copy_cpu[1]:.1f} s) | source "
                  f"{source_seconds:5.2f} s (extract/normalize/load {t.get('extract')}/{t.get('normalize')}/"
                  f"{t.get('load')}; CPU loader/pg {source_cpu[0]:.1f}/{source_cpu[1]:.1f} s) | "
                  f"wall x{walls[-1]:.2f}, CPU x{cpus[-1]:.2f}")

    wall, cpu_ratio = statistics.median(walls), statistics.median(cpus)
    ok = wall <= TARGET and cpu_ratio <= TARGET
    print(f"P2 wall ratios per round: {', '.join(f'{w:.2f}' for w in walls)} (spread = the machine's noise)")
    print(f"P2 CPU ratio source/COPY = {cpu_ratio:.2f} (median; loader + Postgres CPU; target <= {TARGET}) "
          f"{'PASS' if cpu_ratio <= TARGET else 'FAIL'}")
    print(f"P2 ratio source/COPY = {wall:.2f} wall, median of {len(walls)} (target <= {TARGET}) "
          f"{'PASS' if wall <= TARGET else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
