"""Apply an `airflow_settings.yaml` (the Astro CLI's format) through Airflow's own commands.

Why a tool of our own around them: the compose init service and the demo need the same
connections, variables and pools as Astro users get from `astro dev object import`, with
errors that name the file, the entry and the field before anything is written, applied
idempotently (a rerun changes nothing and says so) and never deleting. Reading and writing
goes through `airflow connections|variables|pools export|import` only, never Airflow's
models. `${ENV_VAR}` placeholders are expanded for private files such as the demo's
(the shipped airflow_settings.yaml has none: Astro would store them literally).

    python -m signalroom.deploy.airflow_settings check FILE            # validate only
    python -m signalroom.deploy.airflow_settings apply FILE [--dry-run]

A deployment tool run from a terminal or an init container, never DAG-parse code.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

# Our one addition to Astro's keys (Astro ignores it): apply the entry only when this
# environment variable is set, e.g. the Slack webhook, whose mere existence turns alerts on.
ONLY_IF_ENV_SET = "only_if_env_set"
CONNECTION_KEYS = (
    "conn_id", "conn_type", "conn_host", "conn_schema", "conn_login",
    "conn_password", "conn_port", "conn_uri", "conn_extra", ONLY_IF_ENV_SET,
)
POOL_KEYS = ("pool_name", "pool_slot", "pool_description", ONLY_IF_ENV_SET)
VARIABLE_KEYS = ("variable_name", "variable_value", ONLY_IF_ENV_SET)
SECTIONS = {"connections": CONNECTION_KEYS, "pools": POOL_KEYS, "variables": VARIABLE_KEYS}
ID_KEYS = {"connections": "conn_id", "pools": "pool_name", "variables": "variable_name"}

# ${NAME}, ${NAME:-default}; $$ is a literal $
_PLACEHOLDER = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_CONN_ID = re.compile(r"^[\w#!()\-.:/\\]{1,250}$")  # what Airflow's sanitize_conn_id keeps


class SettingsError(ValueError):
    """Every problem found in one settings file, each naming file, entry and field."""

    def __init__(self, path: str, problems: list[str]):
        self.path = path
        self.problems = problems
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{path}: {len(problems)} {noun}:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class ConnectionSpec:
    conn_id: str
    conn_type: str
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    port: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        """The values compared against (and written to) the metadata DB."""
        return {
            "conn_type": self.conn_type, "host": self.host, "schema": self.schema,
            "login": self.login, "password": self.password, "port": self.port,
            "extra": dict(self.extra),
        }


@dataclass(frozen=True)
class VariableSpec:
    key: str
    value: str = field(repr=False)


@dataclass(frozen=True)
class PoolSpec:
    name: str
    slots: int
    description: str | None = None


@dataclass(frozen=True)
class Settings:
    path: str
    connections: tuple[ConnectionSpec, ...] = ()
    variables: tuple[VariableSpec, ...] = ()
    pools: tuple[PoolSpec, ...] = ()
    # (kind, id, environment variable) of entries left out by only_if_env_set
    skipped: tuple[tuple[str, str, str], ...] = ()


# --------------------------------------------------------------------------- parsing


@lru_cache(maxsize=1)
def installed_conn_types() -> frozenset[str]:
    """Connection types the installed providers define (plus Airflow's generic/email)."""
    # the providers manager scans every installed provider (seconds): only when types are checked
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    return frozenset(ProvidersManagerTaskRuntime().hooks.keys())


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, key: str | None, message: str) -> None:
        self.items.append(f"{where} {key}: {message}" if key else f"{where}: {message}")


def _expand(value: Any, env: Mapping[str, str], where: str, key: str, problems: _Problems) -> Any:
    """Expand ${VAR} / ${VAR:-default} in strings (recursively in mappings and lists)."""
    if isinstance(value, Mapping):
        return {k: _expand(v, env, where, f"{key}.{k}", problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, where, f"{key}[{i}]", problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        current = env.get(name)
        if current not in (None, ""):
            return current
        if default is not None:
            return default
        problems.add(
            where, key,
            f"environment variable {name} is not set (set it, or write ${{{name}:-default}} in the file)",
        )
        return ""

    return _PLACEHOLDER.sub(substitute, value)


def _text(value: Any, where: str, key: str, problems: _Problems) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, (dict, list)):
        problems.add(where, key, f"expected a string, got a {type(value).__name__}")
        return None
    return str(value)


def _integer(value: Any, where: str, key: str, problems: _Problems, *, minimum: int, maximum: int,
             meaning: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and
                                                                   re.fullmatch(r"-?\d+", value.strip()))):
        problems.add(where, key, f"{value!r} is not {meaning}")
        return None
    number = int(value)
    if not minimum <= number <= maximum:
        problems.add(where, key, f"{number} is out of range for {meaning} ({minimum}..{maximum})")
        return None
    return number


def _check_keys(entry: Mapping, allowed: tuple[str, ...], where: str, problems: _Problems) -> None:
    for key in entry:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; allowed: {', '.join(allowed)}"
            problems.add(where, str(key), f"unknown field{hint}")


def _parse_extra(raw: Any, where: str, problems: _Problems) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.add(where, "conn_extra", f"not valid JSON ({exc.msg}); write a YAML mapping instead")
            return {}
    if not isinstance(raw, dict):
        problems.add(where, "conn_extra", f"must be a mapping (or a JSON object), got {type(raw).__name__}")
        return {}
    return raw


def _connection(entry: Mapping, where: str, problems: _Problems,
                conn_types: Callable[[], Iterable[str]]) -> ConnectionSpec | None:
    before = len(problems.items)
    conn_id = _text(entry.get("conn_id"), where, "conn_id", problems)
    if conn_id is None:
        problems.add(where, "conn_id", "missing: every connection needs a conn_id")
    elif not _CONN_ID.match(conn_id):
        problems.add(where, "conn_id", f"{conn_id!r} has characters Airflow does not allow "
                     "(letters, digits and _ - . : / \\ # ! ( ) only)")
    uri = _text(entry.get("conn_uri"), where, "conn_uri", problems)
    if uri:
        mixed = [k for k in CONNECTION_KEYS
                 if k not in ("conn_id", "conn_uri", ONLY_IF_ENV_SET) and entry.get(k) not in (None, "")]
        if mixed:
            problems.add(where, "conn_uri", f"give either conn_uri or the separate fields, not both "
                         f"(also set: {', '.join(mixed)})")
            return None
        if "://" not in uri:
            problems.add(where, "conn_uri", "not a URI (expected type://login:password@host:port/schema)")
            return None
        # airflow.models loads the ORM and Airflow settings (heavy): only when a URI is parsed
        from airflow.models.connection import Connection

        try:
            parsed = Connection(conn_id=conn_id, uri=uri)
        except Exception as exc:  # Airflow raises several types for a bad URI
            problems.add(where, "conn_uri", f"cannot be parsed: {exc}")
            return None
        entry = {
            "conn_type": parsed.conn_type, "conn_host": parsed.host, "conn_schema": parsed.schema,
            "conn_login": parsed.login, "conn_password": parsed.password, "conn_port": parsed.port,
            "conn_extra": parsed.extra_dejson,
        }
    conn_type = _text(entry.get("conn_type"), where, "conn_type", problems)
    if conn_type is None:
        problems.add(where, "conn_type", "missing (for example postgres, duckdb, http, aws, slackwebhook)")
    else:
        known = set(conn_types())
        if conn_type not in known:
            close = difflib.get_close_matches(conn_type, sorted(known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "is its provider installed?"
            problems.add(where, "conn_type", f"unknown connection type {conn_type!r}: {hint} "
                         f"Installed types: {', '.join(sorted(known))}")
    port = _integer(entry.get("conn_port"), where, "conn_port", problems,
                    minimum=1, maximum=65535, meaning="a port number")
    extra = _parse_extra(entry.get("conn_extra"), where, problems)
    fields = {k: _text(entry.get(f"conn_{k}"), where, f"conn_{k}", problems)
              for k in ("host", "schema", "login", "password")}
    if len(problems.items) > before:
        return None
    return ConnectionSpec(conn_id=conn_id, conn_type=conn_type, port=port, extra=extra, **fields)


def _variable(entry: Mapping, where: str, problems: _Problems) -> VariableSpec | None:
    before = len(problems.items)
    key = _text(entry.get("variable_name"), where, "variable_name", problems)
    if key is None:
        problems.add(where, "variable_name", "missing: every variable needs a variable_name")
    value = entry.get("variable_value")
    if value is None:
        problems.add(where, "variable_value", "missing (write '' for an empty value)")
    elif not isinstance(value, str):
        value = json.dumps(value)  # numbers, booleans, mappings: stored as their JSON text
    if len(problems.items) > before:
        return None
    return VariableSpec(key=key, value=value)


def _pool(entry: Mapping, where: str, problems: _Problems) -> PoolSpec | None:
    before = len(problems.items)
    name = _text(entry.get("pool_name"), where, "pool_name", problems)
    if name is None:
        problems.add(where, "pool_name", "missing: every pool needs a pool_name")
    slots = _integer(entry.get("pool_slot"), where, "pool_slot", problems,
                     minimum=-1, maximum=1_000_000, meaning="a whole number of slots (-1 = unlimited)")
    if slots is None and entry.get("pool_slot") in (None, ""):
        problems.add(where, "pool_slot", "missing: how many task slots the pool has")
    description = _text(entry.get("pool_description"), where, "pool_description", problems)
    if len(problems.items) > before:
        return None
    return PoolSpec(name=name, slots=slots, description=description)


def parse_settings(
    document: Any,
    path: str = "airflow_settings.yaml",
    env: Mapping[str, str] | None = None,
    conn_types: Callable[[], Iterable[str]] = installed_conn_types,
) -> Settings:
    """Validate a parsed settings document; raise `SettingsError` listing every problem."""
    env = os.environ if env is None else env
    problems = _Problems()
    if (not isinstance(document, Mapping) or set(document) != {"airflow"}
            or not isinstance(document["airflow"], (Mapping, type(None)))):
        raise SettingsError(path, ["top level: expected a mapping with an 'airflow' key and nothing else "
                                   "(airflow: {connections: [...], variables: [...], pools: [...]})"])
    airflow = document["airflow"] or {}
    _check_keys(airflow, tuple(SECTIONS), "airflow", problems)
    parsed: dict[str, list] = {name: [] for name in SECTIONS}
    skipped: list[tuple[str, str, str]] = []
    for section, keys in SECTIONS.items():
        entries = airflow.get(section) or []
        if not isinstance(entries, list):
            problems.add(f"airflow.{section}", None, f"must be a list of entries, got {type(entries).__name__}")
            continue
        seen: dict[str, int] = {}
        for index, raw in enumerate(entries):
            label = f"{section}[{index}]"
            if not isinstance(raw, Mapping):
                problems.add(label, None, f"must be a mapping of {', '.join(keys)}")
                continue
            ident = raw.get(ID_KEYS[section])
            where = f"{label} ({ident})" if ident else label
            if all(value in (None, "") for value in raw.values()):
                continue  # Astro's template ships blank entries: nothing to apply
            _check_keys(raw, keys, where, problems)
            gate = raw.get(ONLY_IF_ENV_SET)
            if gate is not None:
                if not isinstance(gate, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", gate):
                    problems.add(where, ONLY_IF_ENV_SET, f"{gate!r} is not an environment variable name")
                    continue
                if not env.get(gate):
                    skipped.append((section.rstrip("s"), str(ident or label), gate))
                    continue
            entry = {k: _expand(v, env, where, k, problems) for k, v in raw.items() if k != ONLY_IF_ENV_SET}
            if section == "connections":
                spec = _connection(entry, where, problems, conn_types)
            elif section == "variables":
                spec = _variable(entry, where, problems)
            else:
                spec = _pool(entry, where, problems)
            if spec is None:
                continue
            ident = spec.conn_id if section == "connections" else spec.key if section == "variables" else spec.name
            if ident in seen:
                problems.add(where, ID_KEYS[section], f"duplicate {ident!r}: already defined by {section}[{seen[ident]}]")
                continue
            seen[ident] = index
            parsed[section].append(spec)
    if problems.items:
        raise SettingsError(path, problems.items)
    return Settings(path=path, connections=tuple(parsed["connections"]),
                    variables=tuple(parsed["variables"]), pools=tuple(parsed["pools"]),
                    skipped=tuple(skipped))


def load_settings(path: str | Path, env: Mapping[str, str] | None = None,
                  conn_types: Callable[[], Iterable[str]] = installed_conn_types) -> Settings:
    """Read and validate a settings file."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except FileNotFoundError:
        raise SettingsError(path, ["file not found"]) from None
    except yaml.YAMLError as exc:
        raise SettingsError(path, [f"not valid YAML: {exc}"]) from None
    return parse_settings(document, path, env, conn_types)


# --------------------------------------------------------------------------- applying


@dataclass
class ApplyReport:
    """What an apply did, per object; values are never included (they may be secrets)."""

    lines: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"created": 0, "updated": 0, "unchanged": 0})

    def record(self, kind: str, ident: str, outcome: str, changed: Iterable[str] = ()) -> None:
        self.counts[outcome] += 1
        detail = f" ({', '.join(changed)})" if changed else ""
        self.lines.append(f"{kind} {ident}: {outcome}{detail}")

    @property
    def changed(self) -> bool:
        return bool(self.counts["created"] or self.counts["updated"])

    def summary(self, dry_run: bool = False) -> str:
        total = sum(self.counts.values())
        if not self.changed:
            return f"nothing changed: all {total} entries already match"
        verb = "would change" if dry_run else "changed"
        return (f"{verb} {self.counts['created'] + self.counts['updated']} of {total} entries: "
                f"{self.counts['created']} created, {self.counts['updated']} updated, "
                f"{self.counts['unchanged']} unchanged")


class ApplyError(RuntimeError):
    """An Airflow command failed, or Airflow did not store what was imported."""


# Runs several `airflow ...` command lines in one interpreter, each parsed and dispatched by
# Airflow's own CLI parser exactly as `airflow <args>` does: one Airflow start-up instead of one
# per command (seconds each on a busy machine).
_RUN_AIRFLOW_COMMANDS = """
import json, sys
from airflow.cli.cli_parser import get_parser
for argv in json.loads(sys.argv[1]):
    print("$ airflow", " ".join(argv), flush=True)
    args = get_parser().parse_args(argv)
    args.func(args)
"""


def _airflow(*commands: list[str]) -> None:
    """`airflow <command>` for each command line, in this environment (AIRFLOW_HOME, the
    metadata DB's URL); the commands print ids and counts, never values."""
    result = subprocess.run([sys.executable, "-c", _RUN_AIRFLOW_COMMANDS, json.dumps(commands)],
                            capture_output=True, text=True)
    if result.returncode:
        raise ApplyError(f"an Airflow command failed ({result.returncode}):\n"
                         f"{(result.stdout + result.stderr)[-2000:]}")


def _export_all(folder: Path) -> dict[str, dict[str, Any]]:
    """What Airflow holds now, through its export commands."""
    targets = {kind: folder / f"current-{kind}.json" for kind in ("connection", "variable", "pool")}
    for target in targets.values():
        target.unlink(missing_ok=True)
    _airflow(["connections", "export", str(targets["connection"]), "--file-format", "json"],
             ["variables", "export", str(targets["variable"])],
             ["pools", "export", str(targets["pool"])])
    state = {}
    for kind, target in targets.items():
        state[kind] = json.loads(target.read_text() or "{}")
        target.unlink()  # it holds every secret of the metadata DB
    return state


def _connection_fields(exported: Mapping[str, Any]) -> dict[str, Any]:
    extra = exported.get("extra")
    if isinstance(extra, str):
        try:
            extra = json.loads(extra) if extra.strip() else {}
        except json.JSONDecodeError:
            extra = {"<not JSON>": extra}
    return {"conn_type": exported.get("conn_type"), "host": exported.get("host"),
            "schema": exported.get("schema"), "login": exported.get("login"),
            "password": exported.get("password"), "port": exported.get("port"), "extra": extra or {}}


def _variable_matches(exported: Any, value: str) -> bool:
    if isinstance(exported, str):
        return exported == value
    try:  # the export decodes JSON values
        return json.loads(value) == exported
    except json.JSONDecodeError:
        return False


def _differences(settings: Settings, state: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, Any, list[str] | None]]:
    """(kind, id, import entry, changed fields) per listed entry; changed None = not in Airflow."""
    out: list[tuple[str, str, Any, list[str] | None]] = []
    for conn in settings.connections:
        wanted = conn.fields()
        entry = {**{k: v for k, v in wanted.items() if v not in (None, {})}}
        current = state["connection"].get(conn.conn_id)
        changed = None if current is None else [
            name for name, have in _connection_fields(current).items() if (have or None) != (wanted[name] or None)
        ]
        out.append(("connection", conn.conn_id, entry, changed))
    for variable in settings.variables:
        current = state["variable"]
        changed = None if variable.key not in current else (
            [] if _variable_matches(current[variable.key], variable.value) else ["value"])
        out.append(("variable", variable.key, variable.value, changed))
    for pool in settings.pools:
        current = state["pool"].get(pool.name)
        entry = {"slots": pool.slots, "description": pool.description or "",
                 "include_deferred": bool((current or {}).get("include_deferred", False))}
        changed = None if current is None else [
            name for name, have, want in (("slots", current.get("slots"), pool.slots),
                                          ("description", current.get("description") or None, pool.description))
            if have != want
        ]
        out.append(("pool", pool.name, entry, changed))
    return out


_IMPORTS = {
    "connection": ["connections", "import", "{file}", "--overwrite"],
    "variable": ["variables", "import", "{file}", "--action-on-existing-key", "overwrite"],
    "pool": ["pools", "import", "{file}"],
}


def _import(folder: Path, todo: Mapping[str, Mapping[str, Any]]) -> None:
    """Airflow's import commands for the kinds that have entries to write."""
    commands = []
    for kind, entries in todo.items():
        if entries:
            path = folder / f"import-{kind}.json"
            path.write_text(json.dumps(entries))
            commands.append([arg.format(file=path) for arg in _IMPORTS[kind]])
    try:
        _airflow(*commands)
    finally:
        for kind in todo:
            (folder / f"import-{kind}.json").unlink(missing_ok=True)


def apply_settings(settings: Settings, dry_run: bool = False) -> ApplyReport:
    """Create or update every listed entry through Airflow's own commands; delete nothing.

    `airflow {connections,variables,pools} export` tell what Airflow holds; only the entries
    that are missing or differ go to `airflow connections import --overwrite`,
    `airflow variables import --action-on-existing-key overwrite` and `airflow pools import`;
    a final export checks Airflow stored them. Nothing to change: no import runs at all.
    The files those commands read and write hold secrets: they live in a private temporary
    folder and are removed at once."""
    report = ApplyReport()
    for kind, ident, variable in settings.skipped:
        report.lines.append(f"{kind} {ident}: skipped ({variable} is not set)")
    with tempfile.TemporaryDirectory(prefix="signalroom-settings-") as tmp:
        folder = Path(tmp)
        todo: dict[str, dict[str, Any]] = {"connection": {}, "variable": {}, "pool": {}}
        for kind, ident, entry, changed in _differences(settings, _export_all(folder)):
            if changed is None:
                report.record(kind, ident, "created")
            elif changed:
                report.record(kind, ident, "updated", changed)
            else:
                report.record(kind, ident, "unchanged")
                continue
            todo[kind][ident] = entry
        if dry_run or not report.changed:
            return report
        _import(folder, todo)
        left = [f"{kind} {ident} ({', '.join(changed) if changed is not None else 'missing'})"
                for kind, ident, _, changed in _differences(settings, _export_all(folder))
                if changed is None or changed]
    if left:
        raise ApplyError("Airflow did not store: " + "; ".join(left))
    return report


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m signalroom.deploy.airflow_settings",
        description="Validate or apply an airflow_settings.yaml (Astro CLI format) through Airflow's "
        "import/export commands. ${VAR} and ${VAR:-default} are expanded from the environment.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate the file; touch no database")
    check.add_argument("file")
    apply = sub.add_parser("apply", help="create or update connections, variables and pools")
    apply.add_argument("file")
    apply.add_argument("--dry-run", action="store_true", help="report what would change; write nothing")
    args = parser.parse_args(argv)

    try:
        settings = load_settings(args.file)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check":
        skipped = f", {len(settings.skipped)} skipped" if settings.skipped else ""
        print(f"{args.file}: ok ({len(settings.connections)} connections, {len(settings.variables)} "
              f"variables, {len(settings.pools)} pools{skipped})")
        return 0
    try:
        report = apply_settings(settings, dry_run=args.dry_run)
    except ApplyError as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return 1
    for line in report.lines:
        print(line)
    print(f"{args.file}: {report.summary(dry_run=args.dry_run)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
