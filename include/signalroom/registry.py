"""The source registry: the one place a source is named, located and configured.

Registering a source here is the only step needed for its DAG to appear. Everything in
this module is plain data so that DAG files can read it at parse time without importing
dlt or the sources themselves; `load_source_function` imports a source lazily, by name.

It is also the single truth of each resource's contract (table, primary key, write
disposition and merge key, date column): the sources read theirs from here when they
declare their dlt resources, and tests/test_registry.py compares it with dlt's own schema
of what every source yields.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

from signalroom.base.naming import pipeline_name
from signalroom.base.window import DEFAULT_TIMEZONE

DEFAULT_CLIENT_ID = "713"  # the `_client_id` stamped on every row unless a source is given another


class UnknownSourceError(KeyError):
    """A source or resource name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass(frozen=True)
class VolumeBands:
    """The volume anomaly check of a resource (signalroom.checks.volume): a touched day's rows
    as a ratio of the median of the `history_days` days before it."""

    history_days: int = 14
    min_history_days: int = 7  # fewer days with rows: compare nothing, only log
    warn_below: float = 0.5
    fail_below: float = 0.2
    warn_above: float | None = 3.0
    fail_above: float | None = None
    enabled: bool = True


@dataclass(frozen=True)
class ResourceSpec:
    """One dlt resource's contract: what the source declares to dlt and the orchestration
    (checks, DAG docs) relies on, without importing the source."""

    name: str
    table: str
    # dlt's primary key hint (merge dedups on it); () for none
    primary_key: tuple[str, ...] = ()
    # column holding the business (ET) date of a row; the API sources' cursor, freshness checks
    date_column: str | None = None
    write_disposition: str = "merge"
    # dlt's merge strategy hint; None = dlt's default (delete-insert on the primary key)
    merge_strategy: str | None = None
    # dlt's merge key hint: rows of the destination matching the load's values are replaced
    merge_key: tuple[str, ...] = ()
    # the columns that identify a row, when they are not the primary key (unique-key checks)
    row_key: tuple[str, ...] = ()
    # volume anomaly check bands (needs date_column)
    volume: VolumeBands = VolumeBands()

    @property
    def key(self) -> tuple[str, ...]:
        """The columns that must be unique and not null in the table."""
        return self.row_key or self.primary_key

    @property
    def dlt_write_disposition(self) -> str | dict[str, str]:
        """`write_disposition` as `@dlt.resource` takes it."""
        if self.merge_strategy:
            return {"disposition": self.write_disposition, "strategy": self.merge_strategy}
        return self.write_disposition

    def dlt_hints(self) -> dict[str, object]:
        """The keyword arguments of `@dlt.resource` this contract fixes."""
        hints: dict[str, object] = {
            "name": self.name,
            "table_name": self.table,
            "write_disposition": self.dlt_write_disposition,
        }
        if self.primary_key:
            hints["primary_key"] = self.primary_key
        if self.merge_key:
            hints["merge_key"] = self.merge_key
        return hints

    def describe(self) -> str:
        """Disposition and keys in one phrase (DAG docs, CLI)."""
        how = self.write_disposition + (f" ({self.merge_strategy})" if self.merge_strategy else "")
        if self.merge_key:
            how += f" on {', '.join(self.merge_key)}"
        elif self.primary_key:
            how += f" on {', '.join(self.primary_key)}"
        return how


@dataclass(frozen=True)
class SourceSpec:
    """One registered source: where its dlt function lives and how it is run."""

    name: str
    ref: str  # "package.module:function" returning a dlt source
    resources: tuple[ResourceSpec, ...]
    description: str
    schedule: str = "0 3 * * *"  # cron, read in `timezone`
    # cron (in `timezone`) of the intraday DAG `signalroom_<name>_intraday` loading today's
    # partial day; None = no intraday DAG. API sources with a date cursor only.
    intraday_schedule: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    lookback_days: int = 3
    max_backfill_days: int = 400
    dataset: str | None = None  # defaults to the source name
    owner: str = "data-team"
    tags: tuple[str, ...] = ()
    # Airflow connection whose fields become source kwargs: {"kwarg": "password" | "extra.key" | ...}
    # (the kwargs are the source's dlt config keys, `sources.<name>.<kwarg>`)
    connection_id: str | None = None
    connection_fields: Mapping[str, str] = field(default_factory=dict)
    # the kwargs of `connection_fields` that are secrets (masked in logs)
    secret_fields: tuple[str, ...] = ()
    # static keyword arguments for the source function
    source_kwargs: Mapping[str, object] = field(default_factory=dict)
    # the source yields one resource per configured item (s3_exports: per prefix); resources
    # beyond the registered ones follow the first one's contract
    resources_from_config: bool = False
    # dlt settings for this source's pipelines only ("normalize.workers": 2, ...): applied as
    # env defaults under the pipeline's own section, so other sources never see them
    dlt_config: Mapping[str, object] = field(default_factory=dict)

    @property
    def dataset_name(self) -> str:
        return self.dataset or self.name

    @property
    def resource_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.resources)

    def resource(self, name: str) -> ResourceSpec:
        for resource in self.resources:
            if resource.name == name:
                return resource
        raise UnknownSourceError(
            f"unknown resource {name!r} of source {self.name!r}; "
            f"known resources: {', '.join(self.resource_names)}"
        )

    def config_env_var(self, kwarg: str) -> str:
        """dlt's environment variable for one of the source's config keys."""
        return f"SOURCES__{self.name.upper()}__{kwarg.upper()}"

    def connection_field_for(self, kwarg: str) -> str | None:
        """Where in the source's Airflow connection a config key is set, e.g.
        "password of the Airflow connection 'signalroom_everflow'"; None if not mapped."""
        field_name = self.connection_fields.get(kwarg)
        if not (self.connection_id and field_name):
            return None
        where = f"extra field {field_name.removeprefix('extra.')!r}" if field_name.startswith("extra.") else field_name
        return f"{where} of the Airflow connection {self.connection_id!r}"


_API_CREDENTIALS = {"api_key": "password", "base_url": "host"}
_API_SECRETS = ("api_key",)


def _file_export(prefix: str) -> ResourceSpec:
    """An s3_exports prefix: every file replaces its own rows (delete-insert on the file name);
    a run whose files have no rows in the destination yet appends instead (same result,
    decided at extract)."""
    return ResourceSpec(
        prefix,
        table=prefix,
        date_column="_file_date",
        write_disposition="merge",
        merge_strategy="delete-insert",
        merge_key=("_file_name",),
        row_key=("_file_name", "_row_id"),
    )

REGISTRY: dict[str, SourceSpec] = {
    spec.name: spec
    for spec in (
        SourceSpec(
            name="everflow",
            ref="signalroom.sources.everflow:everflow",
            resources=(
                ResourceSpec(
                    "daily_stats",
                    table="daily_stats",
                    primary_key=("date", "affiliate_id", "advertiser_id"),
                    date_column="date",
                ),
            ),
            description="Everflow affiliate conversions and payout per ET day, "
            "affiliate and advertiser (entity-table report), merged on the key.",
            schedule="0 3 * * *",
            intraday_schedule="0 7-23 * * *",
            tags=("api", "affiliate"),
            connection_id="signalroom_everflow",
            connection_fields=_API_CREDENTIALS,
            secret_fields=_API_SECRETS,
        ),
        SourceSpec(
            name="redtrack",
            ref="signalroom.sources.redtrack:redtrack",
            resources=(
                ResourceSpec(
                    "daily_spend",
                    table="daily_spend",
                    primary_key=("date", "source_id"),
                    date_column="date",
                ),
            ),
            description="RedTrack ad spend per ET day and traffic source "
            "(one report request per day), merged on the key.",
            schedule="0 3 * * *",
            intraday_schedule="0 7-23 * * *",
            tags=("api", "ad-spend"),
            connection_id="signalroom_redtrack",
            connection_fields=_API_CREDENTIALS,
            secret_fields=_API_SECRETS,
        ),
        SourceSpec(
            name="s3_exports",
            ref="signalroom.sources.s3_exports:s3_exports",
            resources=tuple(
                _file_export(prefix) for prefix in ("orders_create", "orders_update", "prospects_create")
            ),
            description="CRM order exports: one CSV per prefix per day in S3, "
            "loaded once per file (a reloaded file replaces its rows).",
            schedule="0 6 * * *",
            tags=("s3", "crm"),
            connection_id="signalroom_s3",
            connection_fields={
                "bucket_url": "extra.bucket_url",
                "aws_access_key_id": "login",
                "aws_secret_access_key": "password",
                "endpoint_url": "extra.endpoint_url",
                "region_name": "extra.region_name",
                "prefixes": "extra.prefixes",
            },
            secret_fields=("aws_secret_access_key",),
            resources_from_config=True,
            # DuckDB (parquet) load files of 50k rows; on Postgres the source writes its own CSV
            # load files, the exports' own bytes (sources/s3_exports/load_files.py), copied in parallel.
            # (normalize.workers > 1 would spawn, not fork, processes under Airflow: no gain.)
            dlt_config={"data_writer.file_max_items": 50_000},
        ),
    )
}

# The seed's shape: name -> "module:function"
SOURCES: dict[str, str] = {name: spec.ref for name, spec in REGISTRY.items()}


def get_spec(name: str) -> SourceSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownSourceError(
            f"unknown source {name!r}: not in the source registry "
            f"(include/signalroom/registry.py). Known sources: {', '.join(sorted(REGISTRY))}"
        ) from None


def resource_contract(source: str, resource: str) -> ResourceSpec:
    """A resource's registered contract; for a source whose resources follow its configuration
    (s3_exports: one per prefix), an unregistered name gets the first resource's contract."""
    spec = get_spec(source)
    if resource in spec.resource_names or not spec.resources_from_config:
        return spec.resource(resource)  # unknown resource of a fixed source: a clear error
    return replace(spec.resources[0], name=resource, table=resource)


def source_for_config_key(key: str) -> tuple[SourceSpec, str] | None:
    """`SOURCES__EVERFLOW__API_KEY` or `sources.everflow.api_key` -> (spec, "api_key")."""
    parts = key.replace("__", ".").lower().split(".")
    if len(parts) != 3 or parts[0] != "sources" or parts[1] not in REGISTRY:
        return None
    return REGISTRY[parts[1]], parts[2]


def load_source_function(name: str) -> Callable[..., object]:
    """Import the registered dlt source function (this is where dlt gets imported)."""
    module_name, _, attr = get_spec(name).ref.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def registered_pipelines() -> dict[str, tuple[str, str]]:
    """Every dlt pipeline the registry defines: name -> (source, resource), registry order."""
    return {
        pipeline_name(name, resource): (name, resource)
        for name, spec in REGISTRY.items()
        for resource in spec.resource_names
    }


def find_pipeline(name: str) -> tuple[SourceSpec, ResourceSpec]:
    """The source and resource behind a pipeline name, or a clear error listing the known ones."""
    known = registered_pipelines()
    if name not in known:
        raise UnknownSourceError(
            f"unknown pipeline {name!r}: pipelines are named <source>__<resource> from the "
            f"source registry. Known pipelines: {', '.join(known)}"
        )
    source, resource = known[name]
    spec = get_spec(source)
    return spec, spec.resource(resource)


# ------------------------------------------------------------------ derived reporting models

INTERNAL_AFFILIATE_LABELS = ("G2 - Meta", "G2 - Google", "SB - Meta", "SB - Google")


@dataclass(frozen=True)
class ModelSpec:
    """A reporting model built in the warehouse from loaded resources: DAG `signalroom_<name>`,
    scheduled on its inputs' asset aliases (signalroom.reporting has the SQL and the seed)."""

    name: str  # the view's name
    description: str
    # (source, resource) whose loads trigger the model: every one of them must have landed
    inputs: tuple[tuple[str, str], ...]
    schema: str = "public"
    mapping_table: str = "affiliate_mapping"
    seed: str = "affiliate_mapping.csv"  # a file in include/signalroom/reporting/seeds/
    # affiliate labels whose cost is the mapped RedTrack spend (compared trimmed)
    internal_labels: tuple[str, ...] = INTERNAL_AFFILIATE_LABELS
    # reconciliation: warn when a day's RedTrack spend with no mapping row exceeds this share
    unmapped_spend_warn_share: float = 0.05
    # ... checked over the newest days of RedTrack data (its look-back restates them)
    reconciliation_days: int = 7
    owner: str = "data-team"


MODELS: dict[str, ModelSpec] = {
    model.name: model
    for model in (
        ModelSpec(
            name="daily_performance",
            description="Daily performance per ET date, advertiser and affiliate label: Everflow "
            "conversions and payout, mapped RedTrack spend, cost and CPA.",
            inputs=(("everflow", "daily_stats"), ("redtrack", "daily_spend")),
        ),
    )
}


def get_model(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownSourceError(
            f"unknown model {name!r}: not in include/signalroom/registry.py MODELS. "
            f"Known models: {', '.join(sorted(MODELS))}"
        ) from None
