"""Scale curve: s3_exports time per row and peak memory as the data grows, against COPY.

Two shapes: one export file of 100k, 1M and 5M rows, and P2's ten files of 20k, 200k and 1M
rows in total. Each point loads through `pipeline.run_load` (the Airflow task's path) in a
fresh child process (the point's memory: the peak of its RSS and of the sampled PSS of it and
its exports' writer processes together) from a `file://` bucket, whose
read cost is linear in the bytes read, into a fresh database of a private Postgres; the same
files are COPYed into an all-text table first, in the same round, as the yardstick (COPY's
own curve says what Postgres does with more rows). Median of the rounds per point.

Targets per shape: time per row at the largest size <= 1.2x the smallest's; peak memory
largest/smallest <= 1.5x (P7). The 5M-row file is ~4 GB of CSV; with its load files and two
Postgres copies a round needs ~15 GB of disk, checked before it starts.

    .venv/bin/python bench/bench_scale_s3.py [--rounds 5] [--max-rows 5000000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from datetime import date, timedelta
from pathlib import Path

from _s3_bench import PREFIX, copy_baseline, postgres_server, private_env, run_child

TIME_TARGET = 1.2
MEMORY_TARGET = 1.5
SHAPES = {"1 file": (1, (100_000, 1_000_000, 5_000_000)), "10 files": (10, (20_000, 200_000, 1_000_000))}
BYTES_PER_ROW = 800  # synthetic exports: ~790 bytes per 129-column row
CHILD = r"""
import json, os, resource, sys, threading, time
from datetime import date
import psutil
sys.path[:0] = [os.environ["BENCH_ROOT"], os.environ["BENCH_ROOT"] + "/include"]
import dlt  # imports are not the load
from signalroom.destinations import DestinationConfig
from signalroom.pipeline import Window, run_load

def cpu():  # this process and its exports' writer processes (forked, reaped)
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

peak, sampler_cpu, done = [0], [0.0], threading.Event()
def sample():  # memory of the whole tree: PSS, so pages a fork shares are counted once
    me = psutil.Process()
    while not done.wait(0.1):
        total = 0
        for p in [me, *me.children()]:
            try:
                total += p.memory_full_info().pss
            except psutil.Error:
                pass
        peak[0] = max(peak[0], total)
        sampler_cpu[0] = time.thread_time()  # left out of the load's CPU
threading.Thread(target=sample, daemon=True).start()
started, cpu0 = time.perf_counter(), cpu()
summary = run_load("s3_exports", "orders_create", Window(end=date.fromisoformat(sys.argv[1])),
                   DestinationConfig(kind="postgres", postgres_url=os.environ["BENCH_PG"]),
                   source_kwargs={"bucket_url": os.environ["BENCH_BUCKET"], "prefixes": "orders-create"})
seconds, cpu1 = time.perf_counter() - started, cpu()
done.set()
print(json.dumps({"rows": sum(summary["rows"].values()), "seconds": seconds, "cpu": cpu1 - cpu0 - sampler_cpu[0],
                  "timings": summary["timings"], "peak_kb": max(peak[0] // 1024,
                                                                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)}))
"""


def load_in_child(url: str, bucket: Path, last_day: date, dlt_dir: Path) -> dict:
    env = {"BENCH_PG": url, "BENCH_BUCKET": bucket.as_uri(), "DLT_DATA_DIR": str(dlt_dir)}
    return run_child(CHILD, last_day.isoformat(), env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-rows", type=int, default=5_000_000, help="skip points larger than this")
    args = parser.parse_args()

    tmp = private_env("scale")
    from tools.standins.exports import export_name, header, write_export

    biggest = max(rows for _, sizes in SHAPES.values() for rows in sizes if rows <= args.max_rows)
    need = biggest * BYTES_PER_ROW * 4.5
    free = shutil.disk_usage(tmp).free
    if free < need:
        print(f"scale: {free / 1e9:.0f} GB free under {tmp}, the {biggest}-row point needs ~{need / 1e9:.0f} GB: "
              f"rerun with --max-rows below {biggest}")
        return 1

    results: dict[str, list[dict]] = {}
    ok = True
    with postgres_server() as (new_database, _cpu):
        for shape, (n_files, sizes) in SHAPES.items():
            for rows in (r for r in sizes if r <= args.max_rows):
                bucket = tmp / "bucket"
                days = [date(2025, 12, 1) + timedelta(days=i) for i in range(n_files)]
                files = [write_export(bucket / PREFIX / export_name(day, PREFIX), day, rows // n_files)
                         for day in days]
                copies, loads = [], []
                for n in range(args.rounds):
                    name = f"scale_{n_files}_{rows}_{n}"
                    url = new_database(name)
                    copy_seconds, copied = copy_baseline(url, files, header())
                    load = load_in_child(url, bucket, days[-1], tmp / "dlt")
                    if not load["rows"] == copied == rows // n_files * n_files:
                        print(f"FAIL: {shape} {rows}: loaded {load['rows']}, copied {copied}")
                        return 1
                    copies.append(copy_seconds)
                    loads.append(load)
                    shutil.rmtree(tmp / "dlt", ignore_errors=True)
                    _drop(url, name)
                shutil.rmtree(bucket)
                point = {
                    "rows": rows,
                    "copy": statistics.median(copies),
                    "source": statistics.median(x["seconds"] for x in loads),
                    "cpu": statistics.median(x["cpu"] for x in loads),
                    "peak_mb": max(x["peak_kb"] for x in loads) / 1024,
                    "timings": {k: statistics.median(x["timings"].get(k, 0) for x in loads)
                                for k in ("extract", "normalize", "load")},
                }
                results.setdefault(shape, []).append(point)
                print(f"  {shape:8} {rows:>9} rows: COPY {point['copy']:7.2f} s | source {point['source']:7.2f} s "
                      f"(extract/normalize/load {'/'.join(f'{v:.2f}' for v in point['timings'].values())}, "
                      f"loader CPU {point['cpu']:.1f} s) | peak {point['peak_mb']:5.0f} MB", flush=True)

    print(f"\nscale curve (median of {args.rounds} rounds; us per row = microseconds per row)")
    print(f"  {'shape':8} {'rows':>9} {'COPY us/row':>12} {'source us/row':>14} {'source/COPY':>12} {'peak MB':>8}")
    for shape, points in results.items():
        for p in points:
            print(f"  {shape:8} {p['rows']:>9} {p['copy'] / p['rows'] * 1e6:12.1f} {p['source'] / p['rows'] * 1e6:14.1f} "
                  f"{p['source'] / p['copy']:12.2f} {p['peak_mb']:8.0f}")
    for shape, points in results.items():
        if len(points) < 2:
            continue
        small, large = points[0], points[-1]
        per_row = (large["source"] / large["rows"]) / (small["source"] / small["rows"])
        copy_per_row = (large["copy"] / large["rows"]) / (small["copy"] / small["rows"])
        memory = large["peak_mb"] / small["peak_mb"]
        good = per_row <= TIME_TARGET and memory <= MEMORY_TARGET
        ok = ok and good
        # points run minutes apart on a shared machine: against COPY in the same rounds, the
        # machine's load at each point cancels out
        relative = (large["source"] / large["copy"]) / (small["source"] / small["copy"])
        print(f"{shape}: time per row {large['rows']} vs {small['rows']} rows = {per_row:.2f} (target <= {TIME_TARGET}; "
              f"COPY's own {copy_per_row:.2f}; relative to COPY {relative:.2f}), peak memory {memory:.2f} "
              f"(target <= {MEMORY_TARGET}) {'PASS' if good else 'FAIL'}")
    return 0 if ok else 1


def _drop(url: str, name: str) -> None:
    import psycopg2

    admin = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    admin.cursor().execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


if __name__ == "__main__":
    sys.exit(main())
