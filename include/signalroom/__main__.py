"""`python -m signalroom …`: run a load (the same code path as the Airflow task) from a terminal.

Configuration outside Airflow comes from env vars (see README, "Configuration"): the
destination from SIGNALROOM_DESTINATION / DESTINATION__POSTGRES__CREDENTIALS, source
credentials from dlt's providers (SOURCES__EVERFLOW__API_KEY, …).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import date

from signalroom.registry import REGISTRY, UnknownSourceError, get_spec, pipeline_name


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date: use YYYY-MM-DD (an ET day)") from None


def cmd_sources(args: argparse.Namespace) -> int:
    for name, spec in REGISTRY.items():
        pipelines = ", ".join(pipeline_name(name, r) for r in spec.resource_names)
        print(f"{name:12} {spec.ref:45} pipelines: {pipelines}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from signalroom.destinations import destination_from_env
    from signalroom.pipeline import Window, last_finished_day, run_load

    spec = get_spec(args.source)
    resources = args.resources.split(",") if args.resources else list(spec.resource_names)
    for resource in resources:
        spec.resource(resource)
    end = args.end or last_finished_day(tz=spec.timezone)
    window = Window(start=args.start, end=end, backfill=args.start is not None)
    destination = destination_from_env()
    summaries = [run_load(args.source, r, window, destination) for r in resources]
    print(json.dumps(summaries, indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m signalroom", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sources", help="list registered sources and their pipelines")
    p.set_defaults(func=cmd_sources)

    p = sub.add_parser("run", help="load a source (all or some resources) for a window")
    p.add_argument("source", help=f"one of: {', '.join(REGISTRY)}")
    p.add_argument("--resources", help="comma-separated subset of the source's resources")
    p.add_argument("--start", type=_day, help="backfill start (ET day); omit for a cursor-based run")
    p.add_argument("--end", type=_day, help="last ET day to load (default: yesterday in ET)")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UnknownSourceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
