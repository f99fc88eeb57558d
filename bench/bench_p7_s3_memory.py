"""P7: peak memory of loading one 1M-row export against one 100k-row export.

Each load runs in a fresh child process (`run_load` into Postgres, the file read from the
S3 stand-in running in another process), which reports its own peak RSS (ru_maxrss, plus
any child's). Streaming reads (pyarrow blocks) and dlt's buffered writers should keep the
peak flat: target <= 1.5x.

The large file's extract time is moto's, not ours: moto copies the whole object for every
ranged GET (8 MiB each here), so an 800 MB object costs ~100 full copies; S3 does not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date

from _s3_bench import BUCKET, PREFIX, postgres_database, private_env, run_child

TARGET = 1.5
CHILD = r"""
import json, os, resource, sys, time
from datetime import date
sys.path[:0] = [os.environ["BENCH_ROOT"], os.environ["BENCH_ROOT"] + "/include"]
from signalroom.destinations import DestinationConfig
from signalroom.pipeline import Window, run_load
started = time.perf_counter()
summary = run_load("s3_exports", "orders_create", Window(start=date.fromisoformat(sys.argv[1]),
                   end=date.fromisoformat(sys.argv[1]), backfill=True),
                   DestinationConfig(kind="postgres", postgres_url=os.environ["BENCH_PG"]),
                   source_kwargs=json.loads(os.environ["BENCH_S3"]))
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rows": sum(summary["rows"].values()), "peak_kb": max(own, kids),
                  "seconds": time.perf_counter() - started, "timings": summary["timings"]}))
"""


def load_in_child(day: date, url: str, s3_kwargs: dict) -> dict:
    return run_child(CHILD, day.isoformat(), {"BENCH_PG": url, "BENCH_S3": json.dumps(s3_kwargs)})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    args = parser.parse_args()

    tmp = private_env("p7")
    from tools.standins.exports import export_name, write_export
    from tools.standins.s3 import S3Process

    small_day, large_day = date(2025, 12, 1), date(2025, 12, 2)
    started = time.perf_counter()
    files = {
        day: write_export(tmp / "exports" / PREFIX / export_name(day, PREFIX), day, rows)
        for day, rows in ((small_day, args.small), (large_day, args.large))
    }
    print(f"P7: files {', '.join(f'{p.stat().st_size / 1e6:.0f} MB' for p in files.values())} "
          f"written in {time.perf_counter() - started:.0f} s")

    with postgres_database() as (url, _), S3Process() as s3:
        s3.create_bucket(BUCKET)
        s3.upload_folder(tmp / "exports", BUCKET)
        small = load_in_child(small_day, url, s3.source_kwargs(BUCKET))
        large = load_in_child(large_day, url, s3.source_kwargs(BUCKET))

    ratio = large["peak_kb"] / small["peak_kb"]
    for label, result in (("small", small), ("large", large)):
        print(f"  {label:5} {result['rows']:>9} rows  peak RSS {result['peak_kb'] / 1024:7.0f} MB  "
              f"{result['seconds']:6.1f} s  {result['timings']}")
    ok = ratio <= TARGET and small["rows"] == args.small and large["rows"] == args.large
    print(f"P7 ratio peak(large)/peak(small) = {ratio:.2f} (target <= {TARGET}) {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
