"""Several exports checked and written at once, in forked processes.

The check is Python holding the GIL, and while dlt extracts nothing else uses the machine's
other cores (bench P2). Plain `os.fork`, not `multiprocessing`: Airflow's Celery workers run
tasks in daemonic processes, which `multiprocessing` forbids to have children. A fork starts
with the task's imports (spawning would import dlt again, ~1.5 s CPU per process) and ends
with `os._exit`, so none of the task's exit handlers run twice. One child per process slot,
not per export: each fork costs its first touch of the task's memory (~20k page faults).
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import traceback
from typing import IO, Callable, Iterator, Sequence, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

_LENGTH = 8  # bytes of the length before each pickled outcome
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def in_forked_processes(call: Callable[[Item], Result], items: Sequence[Item], processes: int) -> Iterator[Result]:
    """`call(item)` for each item, in `processes` children (child k takes items k, k + processes,
    ...), the results in the items' order.

    An exception in a child is raised here, after the results of the items before it (as itself
    when it pickles, else as a RuntimeError with its traceback); children still running when
    the caller stops are killed."""
    children: list[tuple[int, IO[bytes]]] = []
    done = False
    try:
        for first in range(min(processes, len(items))):
            children.append(_start(call, items, first, processes, [pipe for _, pipe in children]))
        for n in range(len(items)):
            yield _next_result(*children[n % len(children)])
        done = True
    finally:
        for pid, pipe in children:
            _end(pid, pipe, kill=not done)


def _start(
    call: Callable[[Item], Result], items: Sequence[Item], first: int, step: int, others: list[IO[bytes]]
) -> tuple[int, IO[bytes]]:
    read_end, write_end = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: its share of the items, each outcome down the pipe, then gone
        status = 1
        try:
            _die_with(parent)
            gc.disable()  # a collection would touch (copy) every object of the task's memory
            os.close(read_end)
            for pipe in others:
                pipe.close()
            with os.fdopen(write_end, "wb") as out:
                for n in range(first, len(items), step):
                    try:
                        outcome, failed = pickle.dumps((True, call(items[n]), "")), False
                    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the task
                        detail = "".join(traceback.format_exception(exc))
                        outcome, failed = pickle.dumps((False, _pickled(exc), detail)), True
                    out.write(len(outcome).to_bytes(_LENGTH, "little") + outcome)
                    out.flush()
                    if failed:
                        break
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    return pid, os.fdopen(read_end, "rb")


def _die_with(parent: int) -> None:
    """Linux: the kernel kills this child when the task's process dies (a task killed for its
    timeout, or by the OOM killer, leaves no writer running)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the child ends with its share of the exports
        return
    if os.getppid() != parent:  # died before the prctl
        os._exit(1)


def _pickled(exc: BaseException) -> bytes | None:
    try:
        return pickle.dumps(exc)
    except Exception:  # noqa: BLE001 - the traceback text goes back instead
        return None


def _next_result(pid: int, pipe: IO[bytes]) -> Result:
    length = pipe.read(_LENGTH)
    size = int.from_bytes(length, "little")
    outcome = pipe.read(size) if len(length) == _LENGTH else b""
    if len(length) < _LENGTH or len(outcome) < size:  # gone before or while sending its result
        status = _wait(pid)
        raise RuntimeError(
            f"an export writer process (pid {pid}) ended without a result, exit code "
            f"{os.waitstatus_to_exitcode(status)} (negative: killed by that signal, e.g. -9 out of memory)"
        )
    ok, value, detail = pickle.loads(outcome)
    if ok:
        return value
    try:
        exc = pickle.loads(value) if value is not None else None
    except Exception:  # noqa: BLE001 - an exception class that does not unpickle
        exc = None
    raise exc if isinstance(exc, BaseException) else RuntimeError(f"export writer process failed:\n{detail}")


def _wait(pid: int) -> int:
    """The child's wait status (0 when it was reaped already)."""
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0


def _end(pid: int, pipe: IO[bytes], kill: bool) -> None:
    if kill:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    pipe.close()
    _wait(pid)
