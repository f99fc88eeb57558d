"""Readable task logs: dlt's lines at their real level, the load summary at INFO, no secrets.

The end-to-end part runs real DAGs under Airflow's real task supervisor (tests/supervised.py),
so the task log file is the one a worker writes, and greps it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from signalroom.logs import (
    ForwardToLogging,
    cursor_change,
    progress_seconds,
    route_dlt_logs,
    summary_lines,
)

ROOT = Path(__file__).resolve().parent.parent


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def root_records():
    handler = _Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler.records
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_dlt_records_reach_the_host_logging_at_their_level(root_records, dlt_data_dir, tmp_path, capfd):
    """A real dlt pipeline run: its INFO lines arrive through logging, none on stderr."""
    route_dlt_logs()
    import dlt

    @dlt.resource(name="numbers", write_disposition="replace")
    def numbers():
        yield [{"n": i} for i in range(3)]

    pipeline = dlt.pipeline(
        pipeline_name="log_routing_test",
        destination=dlt.destinations.duckdb(str(tmp_path / "w.duckdb")),
        dataset_name="routing",
        pipelines_dir=str(dlt_data_dir / "pipelines"),
    )
    pipeline.run(numbers())
    # dlt re-initialises its logger on every new run context: the forwarding must survive
    dlt_logger = logging.getLogger("dlt")
    assert [type(h) for h in dlt_logger.handlers] == [ForwardToLogging]

    dlt_records = [r for r in root_records if r.name == "dlt"]
    assert dlt_records, "no dlt record reached the root logger"
    assert {r.levelno for r in dlt_records} == {logging.INFO}
    assert any("load" in r.getMessage().lower() for r in dlt_records)
    assert "|dlt|" not in capfd.readouterr().err  # dlt's own stderr format is gone


def test_route_dlt_logs_is_idempotent_and_replaces_dlts_stream_handler():
    dlt_logger = logging.getLogger("dlt")
    saved = list(dlt_logger.handlers)
    try:
        dlt_logger.handlers = [logging.StreamHandler()]  # what dlt installs: stderr
        first = route_dlt_logs()
        second = route_dlt_logs()
        assert first is second
        assert dlt_logger.handlers == [first]
    finally:
        dlt_logger.handlers = saved


def test_progress_seconds_setting(monkeypatch):
    monkeypatch.delenv("SIGNALROOM_PROGRESS_SECONDS", raising=False)
    assert progress_seconds() == 30
    monkeypatch.setenv("SIGNALROOM_PROGRESS_SECONDS", "5")
    assert progress_seconds() == 5
    for bad in ("soon", "0", "-3"):
        monkeypatch.setenv("SIGNALROOM_PROGRESS_SECONDS", bad)
        with pytest.raises(ValueError, match="SIGNALROOM_PROGRESS_SECONDS"):
            progress_seconds()


def test_summary_lines_say_each_fact_once():
    summary = {
        "pipeline": "everflow__daily_stats",
        "dataset": "everflow",
        "destination": "postgres 127.0.0.1:5432/db",
        "window": {"start": "2025-01-01", "end": "2025-01-03", "backfill": True},
        "load_ids": ["1795883970.16"],
        "rows": {"daily_stats": 75},
        "timings": {"extract": 0.4, "normalize": 0.1, "load": 0.9},
        "cursor_before": {"incremental.date": {"last_value": "2024-12-31"}},
        "cursor_after": {"incremental.date": {"last_value": "2025-01-03"}},
        "seconds": 2.1,
    }
    lines = summary_lines(summary)
    text = "\n".join(lines)
    assert all(line.startswith("summary everflow__daily_stats: ") for line in lines)
    assert "backfill window 2025-01-01 .. 2025-01-03 (ET days, inclusive)" in text
    assert "rows daily_stats=75 (total 75); load ids 1795883970.16" in text
    assert "extract 0.4, normalize 0.1, load 0.9, total 2.1" in text
    assert "cursor incremental.date 2024-12-31 -> 2025-01-03" in text
    assert "files" not in text
    summary["files"] = [f"orders-create/report_{i}.csv" for i in range(7)]
    assert "files 7: orders-create/report_0.csv" in "\n".join(summary_lines(summary))


def test_cursor_change_marks_unchanged_and_stateless():
    same = {"files": {"entries": 3}}
    assert cursor_change(same, same) == "files 3 entries (unchanged)"
    assert cursor_change({}, {}) == "none (resource keeps no state)"
