"""s3_exports' forked writers (sources/s3_exports/parallel.py): results in order, a child's
failure raised in the task with what it said, nothing left running. Real forks."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from signalroom.sources.s3_exports.helpers import BadExportFileError
from signalroom.sources.s3_exports.parallel import in_forked_processes


def test_results_come_in_the_items_order_from_two_children():
    results = list(in_forked_processes(lambda n: (n * n, os.getpid()), range(7), 2))
    assert [square for square, _ in results] == [n * n for n in range(7)]
    assert len({pid for _, pid in results} - {os.getpid()}) == 2  # two children, not this process
    assert psutil.Process().children() == []


def test_a_childs_bad_export_is_raised_after_the_results_before_it():
    def call(n: int) -> int:
        if n == 3:
            raise BadExportFileError("orders-create/x.csv", 7, "expected 2 fields as in the header, found 3")
        return n

    got = []
    with pytest.raises(BadExportFileError) as failure:
        for result in in_forked_processes(call, range(6), 2):
            got.append(result)
    assert got == [0, 1, 2]
    assert failure.value.line == 7 and "orders-create/x.csv, line 7: expected 2 fields" in str(failure.value)
    assert psutil.Process().children() == []


def test_an_error_that_does_not_pickle_comes_back_as_its_traceback():
    class LocalError(Exception):  # a local class: pickle cannot find it again
        pass

    def call(n: int) -> int:
        raise LocalError(f"cannot read item {n}")

    with pytest.raises(RuntimeError, match=r"(?s)export writer process failed:.*LocalError: cannot read item 0"):
        list(in_forked_processes(call, range(2), 2))


def test_a_killed_child_is_named_with_its_signal():
    def call(n: int) -> int:
        if n == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer would
        return n

    with pytest.raises(RuntimeError, match=r"ended without a result, exit code -9"):
        list(in_forked_processes(call, range(4), 2))
    assert psutil.Process().children() == []


def test_stopping_early_kills_the_children_still_running():
    def call(n: int) -> int:
        if n:
            time.sleep(60)
        return n

    results = in_forked_processes(call, range(4), 2)
    started = time.monotonic()
    assert next(results) == 0
    results.close()
    assert psutil.Process().children() == [] and time.monotonic() - started < 30


def test_writers_die_with_the_task_process():
    """A task killed mid-extract (timeout, OOM killer) leaves no writer running."""
    read_end, write_end = os.pipe()
    task = os.fork()
    if task == 0:  # the "task": writers that would run a minute, their pids reported, then killed
        try:
            import threading

            def report() -> None:
                time.sleep(0.5)
                os.write(write_end, ",".join(str(p.pid) for p in psutil.Process().children()).encode() + b"\n")

            threading.Thread(target=report, daemon=True).start()
            next(in_forked_processes(lambda n: time.sleep(60), range(2), 2))
        finally:
            os._exit(1)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        writers = [int(p) for p in pipe.readline().decode().strip().split(",")]
    assert len(writers) == 2
    os.kill(task, signal.SIGKILL)
    os.waitpid(task, 0)

    def running(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + 10
    while any(map(running, writers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(running, writers))
