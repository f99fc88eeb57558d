"""Error text -> likely cause and fix: the on-call table of docs/RUNBOOK.md, in one place.

Pure Python (no Airflow, no dlt import) so the alert notifier, the CLI and the tests share it.
A few rows (API key refused, API unreachable, missing setting, bad trigger input) go beyond the
platform's original on-call table and are marked `extra=True`. Connection ids and fields come
from the registry's mapping, never written here. Order matters: the first matching hint wins, so specific rows come first
(an S3 endpoint that refuses connections is not a database that refuses them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

from signalroom.registry import REGISTRY, source_for_config_key


@dataclass(frozen=True)
class Hint:
    key: str  # stable id; also the RUNBOOK.md anchor (#hint-<key>)
    title: str  # the "error text contains" column, for humans
    cause: str
    fix: str
    patterns: tuple[str, ...]  # regexes, matched case-insensitively on class names + messages
    extra: bool = False  # beyond the team's error list (docs/OPERATIONS.md)

    @property
    def runbook_anchor(self) -> str:
        return f"docs/RUNBOOK.md#hint-{self.key.replace('_', '-')}"

    def text(self) -> str:
        return f"{self.cause} -> {self.fix}"


def _connection_field(kwarg: str) -> tuple[str, str]:
    """("signalroom_everflow / signalroom_redtrack", "password"): the connections that fill a
    config key and the field that does, as the registry maps them."""
    specs = [s for s in REGISTRY.values() if s.connection_id and kwarg in s.connection_fields]
    return " / ".join(str(s.connection_id) for s in specs), specs[0].connection_fields[kwarg]


_API_KEY_CONNS, _API_KEY_FIELD = _connection_field("api_key")
_AWS_CONNS, _AWS_ID_FIELD = _connection_field("aws_access_key_id")
_AWS_SECRET_FIELD = _connection_field("aws_secret_access_key")[1]

# "HTTP 429", "status 401", "status_code=429": a status code, not any number that happens to match
_HTTP_STATUS = r"\b(?:http|status|status[_ ]code|response)\W{{0,3}}{code}\b"

HINTS: tuple[Hint, ...] = (
    Hint(
        "poison_package",
        "poison load package",
        "the destination refuses a load package each time it is loaded (a type mismatch, a "
        "constraint violation): retries cannot help, so the load task failed without retrying",
        "fix the cause named in the error (column hint, table, upstream data), then clear the "
        "task: it finishes or drops the package itself; the maintenance DAG signalroom_maintenance "
        "(pipeline, action=drop, dry_run=false) removes it for good, on the worker holding it",
        (r"PoisonPackageError", r"poison load package"),
        extra=True,
    ),
    Hint(
        "warehouse_connection_missing",
        "no Airflow connection 'signalroom_warehouse'",
        "the warehouse connection does not exist, so the load stopped before extracting (it "
        "never falls back to a local DuckDB file)",
        "create the connection signalroom_warehouse (type postgres, or duckdb with host = file "
        "path), e.g. from airflow_settings.yaml, then clear the task",
        (r"WarehouseConnectionMissing", r"no Airflow connection 'signalroom_warehouse'"),
        extra=True,
    ),
    Hint(
        "pending_packages",
        'pending packages / "finished loading pending packages"',
        "a crashed run left load packages in the pipeline's working folder that the load "
        "could not finish or drop by itself",
        "inspect them with the maintenance DAG signalroom_maintenance (action=inspect), drop "
        "what it lists (action=drop, dry_run=false), then rerun",
        (r"PendingPackagesError", r"pending (load )?packages", r"finished loading pending packages"),
    ),
    Hint(
        "invalid_params",
        "invalid trigger-form input",
        "the backfill form has a bad date, an end before the start, an unknown resource or too long a range",
        "trigger again with start_date/end_date as YYYY-MM-DD (ET days, end not after yesterday)",
        (r"InvalidRunParams",),
        extra=True,
    ),
    Hint(
        "unknown_source",
        "unknown source",
        "the source (or resource) is not in the source registry",
        "register it in include/signalroom/registry.py (python -m signalroom sources lists what is known)",
        (r"UnknownSourceError", r"unknown source", r"unknown resource", r"not in the source registry"),
    ),
    Hint(
        "aws_credentials",
        "NoCredentialsError / InvalidAccessKeyId",
        "AWS credentials missing or wrong",
        f"fix the AWS connection {_AWS_CONNS} ({_AWS_ID_FIELD} = access key id, {_AWS_SECRET_FIELD} = secret key)",
        (
            r"NoCredentialsError",
            r"InvalidAccessKeyId",
            r"SignatureDoesNotMatch",
            r"Unable to locate credentials",
            r"aws_access_key_id",
            r"aws_secret_access_key",
        ),
    ),
    Hint(
        "api_auth",
        "401 / 403 from a source API",
        "the API key is missing, wrong or revoked",
        f"fix the source connection ({_API_KEY_CONNS}: {_API_KEY_FIELD} = API key)",
        (
            r"ApiAuthError",
            r"\b40[13] Client Error",
            r"answered 40[13]\b",
            _HTTP_STATUS.format(code="40[13]"),
            r"unauthori[sz]ed",
            r"\bforbidden\b",
            r"invalid api key",
        ),
        extra=True,
    ),
    Hint(
        "rate_limit",
        "429 / rate limit",
        "the API rate limit was hit",
        "retried automatically; if it persists, lower the request rate or spread the backfill",
        (r"\b429 Client Error", _HTTP_STATUS.format(code="429"), r"too many requests", r"rate[ -]?limit"),
    ),
    Hint(
        "api_unreachable",
        "API or S3 endpoint unreachable",
        "a source endpoint (API base URL, S3 endpoint) does not answer",
        "check the base URL / endpoint_url in the source connection and that the service is up",
        (
            r"HTTPS?ConnectionPool",
            r"Max retries exceeded with url",
            r"EndpointConnectionError",
            r"Could not connect to the endpoint URL",
            r"failed after retries: \w*(?:Connection|Timeout)",
        ),
        extra=True,
    ),
    Hint(
        "pg_password",
        "password authentication failed",
        "pooler user must be postgres.<project_ref>, or the password is not URL-encoded",
        "fix the destination connection signalroom_warehouse (login, password)",
        (r"password authentication failed", r"no password supplied"),
    ),
    Hint(
        "too_many_connections",
        "too many connections",
        "direct connections exhausted",
        "use the pooler (port 6543) in signalroom_warehouse",
        (r"too many connections", r"remaining connection slots are reserved"),
    ),
    Hint(
        "connection_refused",
        "connection refused / could not connect",
        "wrong host or port (pooler 6543, direct 5432), or the database is paused",
        "check host/port of signalroom_warehouse, resume the database",
        (r"connection refused", r"could not connect", r"could not translate host name"),
    ),
    Hint(
        "relation_missing",
        "relation ... does not exist",
        "the pipeline never loaded, or the wrong schema",
        "run the pipeline; check the dataset name",
        (r"relation \S+ does not exist", r"UndefinedTable"),
    ),
    Hint(
        "duplicate_key",
        "duplicate key / primary key violation",
        "append used where merge is needed, or duplicate keys inside one batch",
        "switch the write disposition to merge or dedupe the source",
        (r"duplicate key", r"primary key violation", r"UniqueViolation", r"violates unique constraint"),
    ),
    Hint(
        "type_mismatch",
        "column type mismatch / cannot cast",
        "a column changed type upstream",
        "add a column hint, or drop the table and reload",
        (
            r"column type mismatch",
            r"cannot cast",
            r"DatatypeMismatch",
            r"is of type \S+ but expression is of type",
            r"invalid input syntax for type",
            r"Conversion Error",
        ),
    ),
    Hint(
        "writer_killed",
        "an export writer process ... ended without a result",
        "an s3_exports writer process was killed, exit code -9: most often the kernel's OOM killer",
        "give the worker more memory or set SOURCES__S3_EXPORTS__WRITE_PROCESSES=1, then clear the "
        "load task (nothing was loaded: the run stopped in extract)",
        (r"export writer process \(pid \d+\) ended without a result",),
        extra=True,
    ),
    Hint(
        "missing_config",
        "a required setting is missing",
        "a source or destination setting (API key, bucket URL, credentials) is not configured",
        "fill the config key named in the error (the alert's 'set in Airflow' line names the "
        "connection field; outside Airflow its env var)",
        (
            r"ConfigFieldMissingException",
            r"SourceConfigError",
            r"missing config",
            r"Following fields are missing",
        ),
        extra=True,
    ),
    Hint(
        "import_error",
        "ModuleNotFoundError / ImportError",
        "the deploy misses a package or a source module",
        "add it to requirements.txt and recompile the lock, or deploy the missing module",
        (r"ModuleNotFoundError", r"ImportError", r"No module named", r"MissingDependencyException"),
        extra=True,
    ),
)

UNKNOWN = Hint(
    "unknown",
    "anything else",
    "no known pattern matched",
    "read the task log (link below); the error class and first line say where to start",
    (),
    extra=True,
)

_COMPILED = tuple((hint, re.compile("|".join(hint.patterns), re.IGNORECASE)) for hint in HINTS)


def exception_chain(error: BaseException) -> Iterator[BaseException]:
    """The error and what caused it: `__cause__`/`__context__`, plus dlt's `.exception` wrappers."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        wrapped = getattr(current, "exception", None)  # dlt PipelineStepFailed / job failures
        if isinstance(wrapped, BaseException) and id(wrapped) not in seen:
            current = wrapped
        else:
            # `raise … from None` hides the context on purpose (as tracebacks do)
            hidden = current.__suppress_context__
            current = current.__cause__ or (None if hidden else current.__context__)


def _match_text(text: str) -> Hint | None:
    for hint, pattern in _COMPILED:
        if pattern.search(text):
            return hint
    return None


def match_hint(error: BaseException | str | None) -> Hint:
    """The first hint whose pattern occurs in the error's class name or message, else UNKNOWN.

    The root cause is tried first, then each wrapper outwards: a wrapper's text carries advice
    of its own (dlt's PipelineStepFailed mentions pending packages after any failed load) that
    must not hide a specific cause such as a duplicate key."""
    if error is None:
        return UNKNOWN
    if isinstance(error, str):
        return _match_text(error) or UNKNOWN
    for exc in reversed(list(exception_chain(error))):
        hint = _match_text(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")
        if hint is not None:
            return hint
    return UNKNOWN


def first_line(text: str, limit: int = 300) -> str:
    for line in str(text).splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


@dataclass(frozen=True)
class ErrorSummary:
    error_class: str  # the raised class, e.g. PipelineStepFailed
    root_class: str  # the innermost cause, e.g. UniqueViolation (same as error_class when alone)
    first_line: str  # first non-empty line of the innermost cause's message

    def describe(self) -> str:
        classes = (
            self.error_class
            if self.root_class == self.error_class
            else (f"{self.error_class} <- {self.root_class}")
        )
        return f"{classes}: {self.first_line}" if self.first_line else classes


def summarize_error(error: BaseException) -> ErrorSummary:
    """Class and first line of the raised error and of its root cause (what the on-call reads)."""
    chain = list(exception_chain(error))
    root = next((e for e in reversed(chain) if first_line(str(e))), chain[-1])
    return ErrorSummary(
        error_class=type(error).__name__,
        root_class=type(root).__name__,
        first_line=scrub(first_line(str(root))),
    )


_CONFIG_KEY = re.compile(r"\bSOURCES__[A-Z0-9_]+__[A-Z0-9_]+\b|\bsources\.[a-z0-9_]+\.[a-z0-9_]+\b")


def config_locations(text: str) -> list[str]:
    """The dlt config keys an error names (sources say only those), each with where Airflow sets
    it, through the registry's connection mapping: "sources.redtrack.api_key: password of the
    Airflow connection 'signalroom_redtrack'"."""
    found: dict[str, str] = {}
    for match in _CONFIG_KEY.finditer(str(text)):
        known = source_for_config_key(match.group(0))
        if known is None:
            continue
        spec, kwarg = known
        where = spec.connection_field_for(kwarg)
        if where:
            found.setdefault(f"sources.{spec.name}.{kwarg}", where)
    return [f"{key}: {where}" for key, where in found.items()]


_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<secret>[^@\s/]+)@", re.I)
_SECRET_PARAM = re.compile(
    r"(?P<name>[?&;\s](?:api[_-]?key|apikey|key|token|access[_-]?token|secret|password|passwd|signature|"
    r"x-amz-signature|x-amz-credential|x-amz-security-token)=)(?P<value>[^&\s'\"]+)",
    re.I,
)


def scrub(text: str) -> str:
    """Mask passwords in URLs and secret-looking query parameters (a second line of defence
    behind Airflow's secret masker, for text that leaves the process, e.g. an alert)."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _SECRET_PARAM.sub(lambda m: f"{m['name']}***", text)
