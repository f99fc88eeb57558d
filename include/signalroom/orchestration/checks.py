"""Health-check tasks in the generated DAGs (which checks, what fails: signalroom.checks.catalog).

Per resource group: `<resource>.load >> <resource>.check_indexes >> [<resource>.check_*]`.
Checks inherit the load's skip (trigger rule all_success): a resource not selected for the
run skips its checks instead of failing them. After every group: `dag_checks.*`, which run
when at least one resource loaded and none failed (none_failed_min_one_success).

Parse-time cost: plain operator construction; identifiers are validated here, so a bad
dataset or column name in the registry fails the DAG import with the name and the fix.
"""

from __future__ import annotations

from typing import Any, Sequence

from airflow.sdk import TaskGroup, TriggerRule

from signalroom.checks import catalog
from signalroom.orchestration.check_operators import (
    CheckTarget,
    EnsureCheckIndexes,
    RunColumnCheck,
    RunTableCheck,
    RunThresholdCheck,
    RunValueCheck,
    RunVolumeCheck,
)
from signalroom.orchestration.connections import WAREHOUSE_CONN_ID
from signalroom.registry import ResourceSpec, SourceSpec

DAG_CHECKS_GROUP = "dag_checks"


def _load_task_id(spec: SourceSpec, resource: ResourceSpec) -> str:
    return f"{resource.name}.load"


def _operator(target: CheckTarget, **kwargs: Any):
    kind = target.check.operator
    kwargs.setdefault("conn_id", WAREHOUSE_CONN_ID)
    kwargs.setdefault("task_id", target.check.name)
    if kind == "value":
        return RunValueCheck(target=target, **kwargs)
    if kind == "column":
        return RunColumnCheck(target=target, **kwargs)
    if kind == "table":
        return RunTableCheck(target=target, checks=catalog.PIPELINE_STATE_CHECKS, **kwargs)
    if kind == "volume":
        return RunVolumeCheck(target=target, **kwargs)
    if kind == "threshold":
        return RunThresholdCheck(target=target, max_threshold="${state_max_bytes}", **kwargs)
    raise ValueError(f"unknown check operator kind {kind!r} for {target.check.name}")


def resource_checks(spec: SourceSpec, resource: ResourceSpec, load: Any) -> list:
    """The checks of one resource, created in the current (resource) TaskGroup after `load`."""
    catalog.validate_resource(spec.dataset_name, resource)
    load_task_id = _load_task_id(spec, resource)
    indexes = EnsureCheckIndexes(
        task_id="check_indexes",
        conn_id=WAREHOUSE_CONN_ID,
        dataset=spec.dataset_name,
        resource=resource,
        do_xcom_push=False,
    )
    checks = [
        _operator(CheckTarget(check, spec.dataset_name, (resource,), (load_task_id,)))
        for check in catalog.resource_checks_for(resource)
    ]
    load >> indexes >> checks
    return [indexes, *checks]


def dag_checks(spec: SourceSpec, upstream: Sequence[Any]) -> list:
    """The per-run checks of the whole dataset, after every resource group."""
    resources = tuple(spec.resources)
    load_ids = tuple(_load_task_id(spec, r) for r in resources)
    with TaskGroup(group_id=DAG_CHECKS_GROUP, tooltip="per-run checks of the dataset's dlt metadata"):
        tasks = [
            _operator(
                CheckTarget(check, spec.dataset_name, resources, load_ids),
                trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
            )
            for check in catalog.DAG_CHECKS
        ]
    for group in upstream:
        group >> tasks
    return tasks
