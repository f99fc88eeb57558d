"""The source registry: the one place a source is named, located and configured.

Registering a source here is the only step needed for its DAG to appear. Everything in
this module is plain data so that DAG files can read it at parse time without importing
dlt or the sources themselves; `load_source_function` imports a source lazily, by name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable, Mapping

DEFAULT_CLIENT_ID = "713"
DEFAULT_TIMEZONE = "America/New_York"


class UnknownSourceError(KeyError):
    """A source or resource name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass(frozen=True)
class ResourceSpec:
    """What the orchestration must know of one dlt resource without importing it."""

    name: str
    table: str
    primary_key: tuple[str, ...] = ()
    # column holding the business (ET) date of a row; used by freshness checks
    date_column: str | None = None
    write_disposition: str = "merge"


@dataclass(frozen=True)
class SourceSpec:
    """One registered source: where its dlt function lives and how it is run."""

    name: str
    ref: str  # "package.module:function" returning a dlt source
    resources: tuple[ResourceSpec, ...]
    description: str
    schedule: str = "0 3 * * *"  # cron, read in `timezone`
    timezone: str = DEFAULT_TIMEZONE
    lookback_days: int = 3
    max_backfill_days: int = 400
    dataset: str | None = None  # defaults to the source name
    owner: str = "data-team"
    tags: tuple[str, ...] = ()
    # Airflow connection whose fields become source kwargs: {"kwarg": "password" | "extra.key" | ...}
    connection_id: str | None = None
    connection_fields: Mapping[str, str] = field(default_factory=dict)
    # static keyword arguments for the source function
    source_kwargs: Mapping[str, object] = field(default_factory=dict)
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


def pipeline_name(source: str, resource: str) -> str:
    """One dlt pipeline per resource, so parallel resource loads never share state."""
    return f"{source}__{resource}"


_API_CREDENTIALS = {"api_key": "password", "base_url": "host"}

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
            tags=("api", "affiliate"),
            connection_id="signalroom_everflow",
            connection_fields=_API_CREDENTIALS,
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
            tags=("api", "ad-spend"),
            connection_id="signalroom_redtrack",
            connection_fields=_API_CREDENTIALS,
        ),
        SourceSpec(
            name="s3_exports",
            ref="signalroom.sources.s3_exports:s3_exports",
            resources=tuple(
                ResourceSpec(
                    prefix,
                    table=prefix,
                    primary_key=("_file_name", "_row_id"),
                    date_column="_file_date",
                )
                for prefix in ("orders_create", "orders_update", "prospects_create")
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
            # bench P2: load files of 50k rows (~40 MB) are copied into Postgres in parallel.
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
