"""Quiet alerts: one message per failed run, a count instead of a flood, one "recovered" line.

A failure streak of one DAG is a small JSON record in an Airflow Variable
(`signalroom_alerts__<dag_id>`), read and written only when an alert would be posted (never at
parse time, never without the Slack connection). `decide_failure` / `decide_success` are pure:
they take the record and return what to post and the new record, so the rules are tested
without Airflow and the notifiers stay thin.

Rules:
- a run posts at most one failure message: the first failing task's alert (it has the error);
  further failed tasks of that run and the run-level callback then post nothing;
- the same error (signature: task, error class, hint) failing again within the window
  (`SIGNALROOM_ALERT_REPEAT_MINUTES`, default 720) is counted, not posted;
- the count goes out as one follow-up when the streak ends (recovery, a different error) or
  at the first repeat after the window (that one included, and a new window starts);
- the first successful run after failures posts one "recovered" line.

Variables have no compare-and-set: two tasks of one run failing in the same second can both
post. Rare (loads of one run rarely fail at the same instant); accepted.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta

ENV_REPEAT_MINUTES = "SIGNALROOM_ALERT_REPEAT_MINUTES"
DEFAULT_REPEAT_MINUTES = 720
VARIABLE_PREFIX = "signalroom_alerts__"


def repeat_window() -> timedelta:
    """SIGNALROOM_ALERT_REPEAT_MINUTES (default 720 = 12 h; 0 = post every failure)."""
    raw = os.environ.get(ENV_REPEAT_MINUTES, "").strip() or str(DEFAULT_REPEAT_MINUTES)
    try:
        minutes = float(raw)
    except ValueError:
        raise ValueError(
            f"{ENV_REPEAT_MINUTES}={raw!r} is not a number of minutes: use e.g. {ENV_REPEAT_MINUTES}=720"
        ) from None
    if minutes < 0:
        raise ValueError(f"{ENV_REPEAT_MINUTES}={raw!r} is negative: use 0 to post every failure")
    return timedelta(minutes=minutes)


@dataclass(frozen=True)
class Streak:
    """Failures of one DAG since its last success."""

    signature: str  # what counts as "the same error"
    summary: str  # the error line of the last full alert, repeated in the follow-up
    window_start: str  # ISO time of the last full alert or follow-up
    first_failure: str  # ISO time of the streak's first alert
    alerted_run: str  # the last run that posted or was counted (one message per run)
    repeats: int = 0  # failed runs counted since window_start, not posted yet
    failed_runs: int = 1  # failed runs in the whole streak

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> Streak | None:
        if not text:
            return None
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError):
            return None  # an unreadable record must not cost an alert: start a new streak


@dataclass(frozen=True)
class Post:
    kind: str  # "alert" | "followup" | "recovered"
    count: int = 0  # followup: how many failed runs it reports
    since: str = ""  # followup: window start; recovered: first failure (ISO)
    summary: str = ""
    failed_runs: int = 0  # recovered: the streak's length


def decide_failure(
    streak: Streak | None, *, signature: str, summary: str, run_id: str, now: datetime, window: timedelta
) -> tuple[list[Post], Streak | None]:
    """What a failure posts, and the streak after it."""
    stamp = now.isoformat()
    if streak is not None and streak.alerted_run == run_id:
        return [], streak  # this run has its message already
    if streak is not None and streak.signature == signature:
        within = now - datetime.fromisoformat(streak.window_start) < window
        counted = replace(streak, alerted_run=run_id, failed_runs=streak.failed_runs + 1)
        if within:
            return [], replace(counted, repeats=streak.repeats + 1)
        post = Post("followup", count=streak.repeats + 1, since=streak.window_start, summary=streak.summary)
        return [post], replace(counted, repeats=0, window_start=stamp)
    posts = []
    if streak is not None and streak.repeats:
        posts.append(Post("followup", count=streak.repeats, since=streak.window_start, summary=streak.summary))
    posts.append(Post("alert"))
    new = Streak(
        signature=signature,
        summary=summary,
        window_start=stamp,
        first_failure=streak.first_failure if streak else stamp,
        alerted_run=run_id,
        failed_runs=(streak.failed_runs + 1) if streak else 1,
    )
    return posts, new


def decide_success(streak: Streak | None) -> list[Post]:
    """What the first success after failures posts (the streak then ends)."""
    if streak is None:
        return []
    posts = []
    if streak.repeats:
        posts.append(Post("followup", count=streak.repeats, since=streak.window_start, summary=streak.summary))
    posts.append(Post("recovered", since=streak.first_failure, failed_runs=streak.failed_runs))
    return posts


# -- storage: an Airflow Variable per DAG (task SDK: workers, dag-processor, dag.test) ---------


def variable_key(dag_id: str) -> str:
    return f"{VARIABLE_PREFIX}{dag_id}"


def _has_supervisor() -> bool:
    """Task processes, the dag-processor and the triggerer talk to Airflow through a supervisor;
    `dag.test()` / `airflow dags test` run DAG callbacks in their own process without one."""
    from airflow.sdk.execution_time import task_runner

    return getattr(task_runner, "SUPERVISOR_COMMS", None) is not None  # set, and not reset to None


def _variables():
    if _has_supervisor():
        from airflow.sdk import Variable
    else:  # in-process test runs: that process holds the metadata DB session itself
        from airflow.models.variable import Variable
    return Variable


def load_streak(dag_id: str) -> Streak | None:
    if _has_supervisor():
        from airflow.sdk import Variable

        return Streak.from_json(Variable.get(variable_key(dag_id), default=None))
    from airflow.models.variable import Variable as StoredVariable

    return Streak.from_json(StoredVariable.get(variable_key(dag_id), default_var=None))


def save_streak(dag_id: str, streak: Streak | None) -> None:
    key = variable_key(dag_id)
    Variable = _variables()  # noqa: N806 - the class, chosen per process
    if streak is None:
        Variable.delete(key)
    else:
        Variable.set(key, streak.to_json(), description="signalroom alert streak (alerts.py)")
