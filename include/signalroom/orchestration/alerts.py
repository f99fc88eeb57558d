"""Failure, recovery and deadline alerts to a Slack incoming webhook (connection `signalroom_slack`).

Delivery is the Slack provider's `SlackWebhookNotifier` (connection format, retries, the
post), built when a callback fires: importing the provider costs ~0.3 s, which every DAG
parse would pay otherwise. What we add: the message (DAG, task, run, try, window, error class
and first line, a hint from `signalroom.hints`, the log URL) and silence when the connection
does not exist, so a bundle without Slack runs without noise; and quiet: one message per failed
run, repeats counted, one "recovered" line (`alert_streaks`). Parse-time cheap: nothing here
touches a connection, dlt, the Slack provider or the database until a callback fires.

Links: log and run links are built on Airflow's `[api] base_url` (AIRFLOW__API__BASE_URL: set it
to the URL people open the UI at); runbook links on SIGNALROOM_RUNBOOK_URL (default the
repository path `docs/RUNBOOK.md`; e.g. the file's URL in your Git host).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping
from urllib.parse import quote

from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference
from airflow.sdk.bases.notifier import BaseNotifier
from airflow.sdk.configuration import conf

from signalroom.base.plan import RunPlan
from signalroom.hints import config_locations, exception_chain, match_hint, scrub, summarize_error
from signalroom.orchestration.connections import aconnection_exists, connection_exists
from signalroom.orchestration.params import InvalidRunParams, RunContext, form_values, resolve_run
from signalroom.registry import SourceSpec, get_spec

log = logging.getLogger("signalroom.alerts")

SLACK_CONN_ID = "signalroom_slack"
ENV_RUNBOOK_URL = "SIGNALROOM_RUNBOOK_URL"  # where docs/RUNBOOK.md is read; anchors appended
DEFAULT_RUNBOOK_URL = "docs/RUNBOOK.md"
ENV_DEADLINE = "SIGNALROOM_DEADLINE_ET"  # "HH:MM" (ET) for every source, or "off"
DEFAULT_DEADLINE = "09:00"


def _redact(text: str) -> str:
    """Airflow's secret masker (every secret registered in this process), then URL scrubbing."""
    try:
        # inside the try: a masker that fails to import must not lose the alert
        from airflow.sdk._shared.secrets_masker import redact

        text = str(redact(text))
    except Exception:  # the masker is a defence; never lose an alert over it
        pass
    return scrub(text)


def _window_text(source: str, context: Mapping[str, Any]) -> str:
    """The run's window, resolved exactly as the plan task does (pure: conf + interval)."""
    dag_run = context.get("dag_run")
    run_after = getattr(dag_run, "run_after", None)
    if run_after is None:
        return "unknown (no run in the callback context)"
    spec = get_spec(source)
    run = RunContext(
        run_type=getattr(dag_run, "run_type", ""),
        run_after=run_after,
        data_interval_start=context.get("data_interval_start"),
        data_interval_end=context.get("data_interval_end"),
        conf=getattr(dag_run, "conf", None),
    )
    try:
        plan = resolve_run(spec, form_values(spec, run.conf), run)
    except InvalidRunParams as exc:
        return f"not resolved: invalid trigger input ({exc})"
    except Exception as exc:  # an alert must still go out
        return f"not resolved ({type(exc).__name__})"
    return RunPlan.from_dict(plan).window.describe()


def runbook_link(anchor: str) -> str:
    """`<SIGNALROOM_RUNBOOK_URL>#<anchor>` (default: the repository path docs/RUNBOOK.md)."""
    base = (os.environ.get(ENV_RUNBOOK_URL) or DEFAULT_RUNBOOK_URL).strip().split("#")[0]
    return f"{base}#{anchor}"


def _run_url(dag_id: str, run_id: str) -> str:
    base = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    return f"{base}/dags/{dag_id}/runs/{quote(run_id)}"


def failure_message(source: str, context: Mapping[str, Any], *, dag_level: bool = False) -> str:
    """The alert text for a failed task (or a failed DAG run) from an Airflow callback context."""
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    dag_id = getattr(dag, "dag_id", None) or getattr(ti, "dag_id", "?")
    run_id = context.get("run_id") or getattr(ti, "run_id", "?")
    error = context.get("exception")

    if dag_level:
        reason = context.get("reason") or "failed"
        head = f":red_circle: *{dag_id}* run failed ({reason})"
    else:
        head = f":red_circle: *{dag_id}* task `{getattr(ti, 'task_id', '?')}` failed"
    lines = [head, f"run: `{run_id}`"]
    if ti is not None:
        retries = getattr(getattr(ti, "task", None), "retries", None)
        tries = f" of {retries + 1}" if isinstance(retries, int) else ""
        task_line = f"task: `{ti.task_id}`, " if dag_level else ""
        lines.append(f"{task_line}try: {getattr(ti, 'try_number', '?')}{tries}")
    lines.append(f"window: {_window_text(source, context)}")

    if isinstance(error, BaseException):
        hint = match_hint(error)
        lines.append(f"error: {summarize_error(error).describe()}")
    elif error:  # Airflow passes a string for some failures (e.g. a killed task)
        hint = match_hint(str(error))
        lines.append(f"error: {str(error).splitlines()[0] if str(error) else error}")
    else:
        hint = None
        lines.append(
            "error: not in the callback context (see the failed task's alert and log)"
            if dag_level
            else "error: none recorded (task killed, timed out or lost its worker: see the log)"
        )
    if hint is not None:
        lines.append(f"hint [{hint.key}]: {hint.cause} -> {hint.fix}")
        lines.append(f"runbook: {runbook_link(hint.runbook_anchor.split('#', 1)[1])}")
    if error:  # sources name only their dlt config keys; the registry knows the connection field
        chain = exception_chain(error) if isinstance(error, BaseException) else (error,)
        for location in config_locations("\n".join(str(e) for e in chain)):
            lines.append(f"set in Airflow: {location}")
    if ti is not None and getattr(ti, "log_url", None):
        lines.append(f"log: {ti.log_url}")
        try_number = getattr(ti, "try_number", None)
        if isinstance(try_number, int) and try_number > 1 and "try_number=" in ti.log_url:
            # a retry can fail differently (e.g. on the package the first try left behind)
            first = ti.log_url.rsplit("try_number=", 1)[0] + "try_number=1"
            lines.append(f"first try's log: {first}")
    else:
        lines.append(f"run: {_run_url(dag_id, run_id)}")
    return _redact("\n".join(lines))


def _slack(conn_id: str, text: str):
    """The provider's notifier for one message (imported here, not at parse time)."""
    # the Slack provider costs ~0.3 s per DAG parse: imported when an alert fires
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    return SlackWebhookNotifier(slack_webhook_conn_id=conn_id, text=text)


class _TextNotifier(BaseNotifier):
    """A notifier whose text is built from the context in notify(), not templated."""

    template_fields = ()

    def render_template_fields(self, context, jinja_env=None) -> None:
        # nothing to render; and under dag.test() the DAG in a DAG callback's context is a
        # SerializedDAG without the template env BaseNotifier would ask it for
        return None


def failure_signature(context: Mapping[str, Any], *, dag_level: bool = False) -> tuple[str, str]:
    """(signature, summary line) of a failure: the same task failing with the same error class and
    hint is "the same error" (messages differ in ids and times; classes and hints do not)."""
    ti = context.get("ti") or context.get("task_instance")
    error = context.get("exception")
    if dag_level:
        reason = context.get("reason") or "failed"
        return f"run|{reason}", f"run failed ({reason})"
    task_id = getattr(ti, "task_id", "?")
    if isinstance(error, BaseException):
        summary = summarize_error(error)
        hint = match_hint(error)
        return f"{task_id}|{hint.key}|{summary.error_class}|{summary.root_class}", (
            f"task `{task_id}`: {_redact(summary.describe())}"
        )
    text = str(error).splitlines()[0] if error else "no error recorded"
    hint = match_hint(text)
    return f"{task_id}|{hint.key}|{re.sub(r'[0-9]+', '#', text)[:200]}", f"task `{task_id}`: {_redact(text)}"


def _et(stamp: str) -> str:
    from zoneinfo import ZoneInfo

    moment = datetime.fromisoformat(stamp).astimezone(ZoneInfo("America/New_York"))
    return moment.strftime("%Y-%m-%d %H:%M ET")


def followup_message(dag_id: str, run_id: str, post) -> str:
    runs = f"{post.count} more failed run{'s' if post.count != 1 else ''}"
    return _redact(
        f":repeat: *{dag_id}* same error in {runs} since {_et(post.since)} (last: `{run_id}`)\n"
        f"{post.summary}"
    )


def recovered_message(dag_id: str, run_id: str, post) -> str:
    runs = f"{post.failed_runs} failed run{'s' if post.failed_runs != 1 else ''}"
    return _redact(
        f":large_green_circle: *{dag_id}* recovered: run `{run_id}` succeeded after {runs} "
        f"since {_et(post.since)}"
    )


def _dag_id(context: Mapping[str, Any]) -> str:
    ti = context.get("ti") or context.get("task_instance")
    return getattr(context.get("dag"), "dag_id", None) or getattr(ti, "dag_id", "?")


def _run_id(context: Mapping[str, Any]) -> str:
    ti = context.get("ti") or context.get("task_instance")
    return context.get("run_id") or getattr(ti, "run_id", "?")


class SignalroomFailureNotifier(_TextNotifier):
    """`on_failure_callback` for tasks (after the last retry) and DAG runs of one source.

    One message per failed run: the first failed task posts (it has the error); the run-level
    callback posts only when no task did (run timed out, tasks deadlocked). Repeats are counted
    (`alert_streaks`)."""

    def __init__(
        self, source: str, *, dag_level: bool = False, slack_webhook_conn_id: str = SLACK_CONN_ID, **kwargs
    ):
        super().__init__(**kwargs)
        self.source = source
        self.dag_level = dag_level
        self.slack_webhook_conn_id = slack_webhook_conn_id

    def notify(self, context):
        from signalroom.orchestration import alert_streaks

        if not connection_exists(self.slack_webhook_conn_id):
            log.info("no connection %r: failure alert not sent", self.slack_webhook_conn_id)
            return
        dag_id, run_id = _dag_id(context), _run_id(context)
        signature, summary = failure_signature(context, dag_level=self.dag_level)
        try:
            streak = alert_streaks.load_streak(dag_id)
            posts, new = alert_streaks.decide_failure(
                streak, signature=signature, summary=summary, run_id=run_id,
                now=datetime.now(timezone.utc), window=alert_streaks.repeat_window(),
            )
            if new != streak:
                alert_streaks.save_streak(dag_id, new)
        except Exception as exc:  # the streak only quiets alerts: never lose one over it
            log.warning("alert streak not read/saved (%s: %s): posting the alert", type(exc).__name__, exc)
            streak, new, posts = None, None, [alert_streaks.Post("alert")]
        if not posts:
            why = "this run's alert is posted already" if streak and streak.alerted_run == run_id else (
                f"same error as the last alert, counted ({new.repeats} since {new.window_start})"
            )
            log.info("failure alert not sent: %s", why)
            return
        for post in posts:
            if post.kind == "alert":
                text = failure_message(self.source, context, dag_level=self.dag_level)
            else:
                text = followup_message(dag_id, run_id, post)
            _slack(self.slack_webhook_conn_id, text).notify(context)
            log.info("%s sent to %r", "failure alert" if post.kind == "alert" else "follow-up",
                     self.slack_webhook_conn_id)


class SignalroomRecoveryNotifier(_TextNotifier):
    """DAG `on_success_callback`: one "recovered" line after failures (and the repeat count)."""

    def __init__(self, source: str, *, slack_webhook_conn_id: str = SLACK_CONN_ID, **kwargs):
        super().__init__(**kwargs)
        self.source = source
        self.slack_webhook_conn_id = slack_webhook_conn_id

    def notify(self, context):
        from signalroom.orchestration import alert_streaks

        if not connection_exists(self.slack_webhook_conn_id):
            return
        dag_id, run_id = _dag_id(context), _run_id(context)
        try:
            streak = alert_streaks.load_streak(dag_id)
            if streak is None:
                return
            alert_streaks.save_streak(dag_id, None)
        except Exception as exc:
            log.warning("alert streak not read/cleared (%s: %s): no recovery line", type(exc).__name__, exc)
            return
        for post in alert_streaks.decide_success(streak):
            maker = recovered_message if post.kind == "recovered" else followup_message
            _slack(self.slack_webhook_conn_id, maker(dag_id, run_id, post)).notify(context)
        log.info("recovery sent to %r", self.slack_webhook_conn_id)


def schema_notice_message(dag_id: str, run_id: str, summary: Mapping[str, Any]) -> str:
    """A notice (not a failure): what dlt changed in the destination's schema in this load."""
    from signalroom.base.schema_changes import describe

    lines = [
        f":large_blue_circle: *{dag_id}* schema change in `{summary.get('pipeline', '?')}` "
        "(notice: the load succeeded)",
        f"run: `{run_id}`",
        *(f"- {line}" for line in describe(summary.get("schema_changes") or {})),
        f"runbook: {runbook_link('schema-changes')}",
    ]
    return _redact("\n".join(lines))


def post_schema_notice(summary: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    """From the load task: one notice when its load changed the schema; True when posted."""
    if not summary.get("schema_changes"):
        return False
    if not connection_exists(SLACK_CONN_ID):
        log.info("no connection %r: schema-change notice not sent", SLACK_CONN_ID)
        return False
    text = schema_notice_message(_dag_id(context), _run_id(context), summary)
    try:
        _slack(SLACK_CONN_ID, text).notify(context)
    except Exception as exc:  # the data is loaded: a notice that cannot be sent must not fail it
        log.warning("schema-change notice not sent (%s: %s)", type(exc).__name__, exc)
        return False
    log.info("schema-change notice sent to %r", SLACK_CONN_ID)
    return True


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str) and value:
        try:
            return _moment(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def _et_moment(moment: datetime | None) -> str:
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%d %H:%M ET") if moment else "?"


def deadline_applies(context: Mapping[str, Any]) -> str | None:
    """None when the deadline alert should go out; otherwise why not. A run that finished (failed
    or succeeded) is not late: its failure has its own alert. A manual/backfill run queued after
    its deadline (an old logical date) was started late on purpose."""
    dag_run = context.get("dag_run") or {}
    state = str(dag_run.get("state") or "")
    if state in ("success", "failed"):
        return f"the run already finished ({state})"
    deadline = _moment((context.get("deadline") or {}).get("deadline_time"))
    queued = _moment(dag_run.get("queued_at"))
    if dag_run.get("run_type") != "scheduled" and deadline and queued and queued >= deadline:
        return f"the {dag_run.get('run_type')} run was queued after its deadline"
    return None


def deadline_message(source: str, deadline_et: str, context: Mapping[str, Any]) -> str:
    """Text for a run still unfinished at its deadline (context as the scheduler builds it),
    stating the deadline that applied to this run."""
    dag_run = context.get("dag_run") or {}
    deadline = _moment((context.get("deadline") or {}).get("deadline_time"))
    dag_id = dag_run.get("dag_id", "?")
    run_id = dag_run.get("dag_run_id") or dag_run.get("run_id", "?")
    run_type = dag_run.get("run_type", "?")
    if run_type == "scheduled":
        head = f"run not finished by {deadline_et} ET"
        rule = f"deadline: {_et_moment(deadline)} (the daily {deadline_et} ET deadline of {source})"
    else:
        logical = _moment(dag_run.get("logical_date"))
        head = f"{run_type} run not finished by {_et_moment(deadline)}"
        span = (deadline - logical) if deadline and logical else None
        rule = (
            f"deadline: {_et_moment(deadline)} = logical date {_et_moment(logical)} + {span} "
            f"(the span a scheduled run gets to reach {deadline_et} ET)"
        )
    lines = [
        f":alarm_clock: *{dag_id}* {head}",
        f"run: `{run_id}` ({run_type}), state {dag_run.get('state', '?')}, "
        f"queued {dag_run.get('queued_at', '?')}, started {dag_run.get('start_date') or 'not yet'}",
        rule,
        "hint [deadline]: a load is slow, stuck on a rate limit, or waiting for a worker -> open the "
        "run, read the running task's log (progress lines every few seconds); see "
        f"{runbook_link('hint-deadline')}",
        f"run: {_run_url(dag_id, run_id)}",
    ]
    return _redact("\n".join(lines))


class SignalroomDeadlineNotifier(_TextNotifier):
    """Deadline-alert callback (runs in the triggerer, hence async); silent without a connection."""

    def __init__(
        self,
        source: str = "",
        deadline_et: str = DEFAULT_DEADLINE,
        slack_webhook_conn_id: str = SLACK_CONN_ID,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.source = source
        self.deadline_et = deadline_et
        self.slack_webhook_conn_id = slack_webhook_conn_id

    async def async_notify(self, context):
        if (why := deadline_applies(context)) is not None:
            log.info("deadline alert not sent: %s", why)
            return
        if not await aconnection_exists(self.slack_webhook_conn_id):
            log.info("no connection %r: deadline alert not sent", self.slack_webhook_conn_id)
            return
        text = deadline_message(self.source, self.deadline_et, context)
        await _slack(self.slack_webhook_conn_id, text).async_notify(context)

    def notify(self, context):  # a sync runner (e.g. an executor callback) gets the same message
        if (why := deadline_applies(context)) is not None:
            log.info("deadline alert not sent: %s", why)
            return
        if not connection_exists(self.slack_webhook_conn_id):
            log.info("no connection %r: deadline alert not sent", self.slack_webhook_conn_id)
            return
        _slack(self.slack_webhook_conn_id, deadline_message(self.source, self.deadline_et, context)).notify(
            context
        )


_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def deadline_time(source: str) -> str | None:
    """The ET time a source's daily run must have finished by: SIGNALROOM_DEADLINE_ET_<SOURCE>,
    else SIGNALROOM_DEADLINE_ET, else 09:00; "off" disables it."""
    value = (
        os.environ.get(f"{ENV_DEADLINE}_{source.upper()}") or os.environ.get(ENV_DEADLINE) or DEFAULT_DEADLINE
    )
    value = value.strip()
    if value.lower() in ("off", "none", "0", "false"):
        return None
    if not _HHMM.match(value):
        raise ValueError(
            f"{ENV_DEADLINE}={value!r} is not an ET time: use HH:MM (24 h), e.g. {ENV_DEADLINE}=09:00, "
            "or 'off'"
        )
    return value


def deadline_interval(schedule: str, deadline_et: str) -> timedelta | None:
    """Time from the scheduled start (cron minute/hour, read in ET) to the deadline, same day
    (next day when the deadline is earlier). None for schedules that are not once a day."""
    fields = schedule.split()
    if len(fields) != 5 or not (fields[0].isdigit() and fields[1].isdigit()) or fields[2:] != ["*", "*", "*"]:
        return None
    start = int(fields[1]) * 60 + int(fields[0])
    hours, minutes = (int(x) for x in deadline_et.split(":"))
    delta = (hours * 60 + minutes - start) % (24 * 60)
    return timedelta(minutes=delta or 24 * 60)


def _under_dags_test() -> bool:
    """`airflow dags test` (Airflow 3.3.2) crashes at the end of every *successful* run of a DAG
    with a deadline: its in-memory DAG keeps the deadline definitions where the run expects the
    ids the scheduler stores (DeadlineAlertModel.get_by_id(<dict>)). No scheduler evaluates
    deadlines there anyway, so such a run gets none. In-process `dag.test()` callers (tests,
    tools/localenv.py) set SIGNALROOM_DEADLINE_ET=off for the same reason."""
    return sys.argv[1:3] == ["dags", "test"]


def deadline_span(spec: SourceSpec, deadline_et: str) -> timedelta | None:
    """Time from a scheduled run's logical date to its deadline. The timetable's logical date is
    its data interval start, one day before the run starts (the interval end, the cron time);
    the deadline is the first `deadline_et` after that start."""
    interval = deadline_interval(spec.schedule, deadline_et)
    return None if interval is None else timedelta(days=1) + interval


def deadline_alert(spec: SourceSpec):
    """Airflow 3 DeadlineAlert: the run must finish by `deadline_time` ET.

    Counted from the run's logical date, not from when it was queued: clearing a task of a run
    with a queued-at deadline answers HTTP 500 in Airflow 3.3 (apache/airflow#70368: the clear
    recalculates queued-at deadlines with the stored interval, a dict, as seconds), which broke
    the runbook's first step; logical-date deadlines are not recalculated, so clearing works.
    The logical date is also the better reference: a scheduled run's deadline is its day's
    `deadline_time` ET whenever it was queued. Exact except on the two DST-switch days (a fixed
    span: one hour off). Runs with no logical date (REST triggers without one) get no deadline;
    manual/backfill runs with one get the same span from it, and `deadline_applies` drops the
    alert of those queued after their deadline and of every run already finished."""
    deadline_et = deadline_time(spec.name)
    if deadline_et is None or _under_dags_test():
        return None
    span = deadline_span(spec, deadline_et)
    if span is None:
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=span,
        callback=AsyncCallback(
            SignalroomDeadlineNotifier,
            kwargs={"source": spec.name, "deadline_et": deadline_et, "slack_webhook_conn_id": SLACK_CONN_ID},
        ),
        name=f"{spec.name} finished by {deadline_et} ET",
    )


def dag_callbacks(spec: SourceSpec) -> dict[str, Any]:
    """DAG arguments: failure alert for the run (when no task posted one), recovery line,
    deadline alert (when the schedule is daily)."""
    args: dict[str, Any] = {
        "on_failure_callback": SignalroomFailureNotifier(spec.name, dag_level=True),
        "on_success_callback": SignalroomRecoveryNotifier(spec.name),
    }
    deadline = deadline_alert(spec)
    if deadline is not None:
        args["deadline"] = deadline
    return args


def task_callbacks(spec: SourceSpec) -> dict[str, Any]:
    """default_args: failure alert per task, after its last retry (retries alert nothing)."""
    return {"on_failure_callback": SignalroomFailureNotifier(spec.name)}
