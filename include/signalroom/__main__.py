"""`python -m signalroom …`: run a load (the same code path as the Airflow task) from a terminal,
inspect a pipeline's incremental state, list or drop its pending load packages, see which ET
days are loaded (completeness).

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

from signalroom.base.window import Window, last_finished_day
from signalroom.completeness import DEFAULT_DAYS, format_completeness, read_completeness
from signalroom.destinations import destination_from_env
from signalroom.maintenance import drop_pending, format_report
from signalroom.pipeline import run_load
from signalroom.registry import REGISTRY, UnknownSourceError, get_spec, pipeline_name, registered_pipelines
from signalroom.state import format_state, read_states


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


def cmd_state(args: argparse.Namespace) -> int:
    names = [args.pipeline] if args.pipeline else list(registered_pipelines())
    states = read_states(names, destination_from_env())
    if args.json:
        print(json.dumps([s.to_dict() for s in states], indent=2, default=str))
    else:
        print("\n\n".join(format_state(s) for s in states))
    return 1 if any(s.error and "never loaded" not in s.error for s in states) else 0


def cmd_completeness(args: argparse.Namespace) -> int:
    results = read_completeness([args.source] if args.source else None, destination_from_env(), args.days, args.end)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        print(format_completeness(results))
    return 1 if any(r.error and "does not exist" not in r.error for r in results) else 0


def cmd_pending(args: argparse.Namespace) -> int:
    report = drop_pending(
        args.pipeline,
        destination_from_env(),
        with_partial_loads=args.with_partial_loads,
        dry_run=not args.drop,
    )
    print(json.dumps(report.to_dict(), indent=2, default=str) if args.json else format_report(report))
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

    pipelines = ", ".join(registered_pipelines())
    p = sub.add_parser("state", help="incremental state of a pipeline as stored in the destination")
    p.add_argument("pipeline", nargs="?", help=f"one of: {pipelines} (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_state)

    p = sub.add_parser(
        "completeness",
        help="rows per resource per ET day: final / provisional (inside the look-back) / missing",
    )
    p.add_argument("source", nargs="?", help=f"one of: {', '.join(REGISTRY)} (default: all)")
    p.add_argument("--days", type=int, default=DEFAULT_DAYS, help=f"finished ET days to show (default {DEFAULT_DAYS})")
    p.add_argument("--end", type=_day, help="newest ET day shown (default: yesterday in ET)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_completeness)

    p = sub.add_parser(
        "pending",
        help="list a pipeline's pending load packages (what a drop would remove); --drop drops them",
        description="Pending packages live in $DLT_DATA_DIR/pipelines/<pipeline>. Only drop when "
        "no load of that pipeline is running (the Airflow maintenance DAG checks this for you).",
    )
    p.add_argument("pipeline", help=f"one of: {pipelines}")
    p.add_argument("--drop", action="store_true", help="drop them (default: dry run, nothing changes)")
    p.add_argument(
        "--with-partial-loads",
        action="store_true",
        help="also drop a partially loaded package (what it wrote stays in the destination)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_pending)
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
