"""Read-only FastAPI app: each pipeline's incremental state and each resource's completeness
(rows per ET day: final / provisional / missing), as JSON and as HTML pages.

Mounted by the plugin under `/signalroom` in Airflow's API server. Airflow gives plugin apps
no authentication of their own (apache/airflow#72655), so every route depends on Airflow's
security dependencies: no or a bad token -> 401/403, and a pipeline is shown only to users
who may read its source's DAG. The page is plain server-rendered HTML (the UI's iframe is
sandboxed without scripts). State comes from `signalroom.state`, the same code path as the
maintenance task's log table and `python -m signalroom state`.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag, requires_authenticated
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from signalroom.base.naming import dag_id_for
from signalroom.completeness import DEFAULT_DAYS, MAX_DAYS, read_completeness
from signalroom.orchestration.connections import WarehouseConnectionMissing, warehouse_destination
from signalroom.registry import find_pipeline, registered_pipelines
from signalroom.state import STATE_HEADER, read_states, state_rows

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def catalog() -> list[dict[str, str]]:
    """Registered pipelines with the DAG that loads each (registry data only: no dlt)."""
    rows = []
    for name in registered_pipelines():
        spec, resource = find_pipeline(name)
        rows.append(
            {
                "pipeline": name,
                "source": spec.name,
                "resource": resource.name,
                "dataset": spec.dataset_name,
                "table": f"{spec.dataset_name}.{resource.table}",
                "dag_id": dag_id_for(spec.name),
            }
        )
    return rows


def _readable(user: Any, rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Only the pipelines whose DAG the user may read (Airflow's own authorization)."""
    allowed = get_auth_manager().filter_authorized_dag_ids(dag_ids={r["dag_id"] for r in rows}, user=user)
    return [r for r in rows if r["dag_id"] in allowed]


def _states(names: list[str]) -> list[Any]:
    if not names:
        return []
    try:
        destination = warehouse_destination()
    except WarehouseConnectionMissing as exc:  # the page says so instead of reading a local file
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    return read_states(names, destination)


app = FastAPI(
    title="SignalRoom pipeline state",
    description="Read-only: dlt incremental state per pipeline, decoded from the destination.",
    dependencies=[Depends(requires_authenticated())],
)


@app.get("/api/pipelines", summary="Registered pipelines the caller may read")
def list_pipelines(user: GetUserDep) -> dict[str, Any]:
    return {"pipelines": _readable(user, catalog())}


@app.get("/api/pipelines/{pipeline}", summary="One pipeline's state as stored in the destination")
def pipeline_state(pipeline: str, user: GetUserDep) -> dict[str, Any]:
    rows = [r for r in catalog() if r["pipeline"] == pipeline]
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown pipeline {pipeline!r}")
    if not get_auth_manager().is_authorized_dag(
        method="GET", details=DagDetails(id=rows[0]["dag_id"]), user=user
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")
    return _states([pipeline])[0].to_dict()


@app.get(
    "/",
    response_class=HTMLResponse,
    summary="The state page (nav link; with ?dag_id= the tab on a DAG's page)",
    # with ?dag_id=, Airflow checks read access to that DAG
    dependencies=[Depends(requires_access_dag("GET"))],
)
def state_page(request: Request, user: GetUserDep, dag_id: str | None = None, pipeline: str | None = None) -> HTMLResponse:
    rows = _readable(user, catalog())
    if dag_id:
        rows = [r for r in rows if r["dag_id"] == dag_id]
    if pipeline:
        rows = [r for r in rows if r["pipeline"] == pipeline]
    states = _states([r["pipeline"] for r in rows])
    html = _templates.get_template("state.html").render(
        dag_id=dag_id,
        pipeline=pipeline,
        items=[(row, st, state_rows(st)) for row, st in zip(rows, states, strict=True)],
        header=STATE_HEADER,
    )
    return HTMLResponse(html)


DaysQuery = Annotated[int, Query(ge=1, le=MAX_DAYS, description="finished ET days shown")]
EndQuery = Annotated[date | None, Query(description="newest ET day shown (default: the last finished one)")]


def _readable_sources(user: Any, source: str | None, dag_id: str | None) -> list[str]:
    rows = _readable(user, catalog())
    if dag_id:
        rows = [r for r in rows if r["dag_id"] == dag_id]
    if source:
        rows = [r for r in rows if r["source"] == source]
    return list(dict.fromkeys(r["source"] for r in rows))


def _completeness(sources: list[str], days: int, end: date | None) -> list[Any]:
    return read_completeness(sources, warehouse_destination(), days, end) if sources else []


@app.get("/api/completeness", summary="Rows per resource per ET day: final / provisional / missing")
def completeness(
    user: GetUserDep, source: str | None = None, days: DaysQuery = DEFAULT_DAYS, end: EndQuery = None,
) -> dict[str, Any]:
    if source and source not in {r["source"] for r in catalog()}:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown source {source!r}")
    sources = _readable_sources(user, source, None)
    return {"days": days, "resources": [r.to_dict() for r in _completeness(sources, days, end)]}


@app.get(
    "/completeness",
    response_class=HTMLResponse,
    summary="The completeness page (all sources; ?dag_id= one DAG's; ?pipeline= one pipeline)",
    dependencies=[Depends(requires_access_dag("GET"))],
)
def completeness_page(
    request: Request, user: GetUserDep, dag_id: str | None = None, pipeline: str | None = None,
    days: DaysQuery = DEFAULT_DAYS, end: EndQuery = None,
) -> HTMLResponse:
    source = find_pipeline(pipeline)[0].name if pipeline and pipeline in registered_pipelines() else None
    results = _completeness(_readable_sources(user, source, dag_id), days, end) if not pipeline or source else []
    if pipeline:
        results = [r for r in results if r.pipeline == pipeline]
    day_list = [d.day for d in results[0].days] if results else []
    cells = {(r.pipeline, d.day): d for r in results for d in r.days}
    html = _templates.get_template("completeness.html").render(
        dag_id=dag_id, days=days, results=results, day_list=day_list, cells=cells,
    )
    return HTMLResponse(html)
