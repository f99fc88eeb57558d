"""Airflow services (api-server, scheduler, dag-processor, triggerer) as children of one
command, used by `make airflow` and the tests that need a running Airflow.

Each service starts in its own session; stopping terminates a service's children first, while
it is still alive, then the service itself (SIGTERM to a parent alone orphans its workers,
which may ignore SIGTERM), and kills whatever is left after a grace period.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil


def stop_tree(pid: int, grace: float = 30.0) -> None:
    """Terminate a process's descendants, then it; kill what outlives `grace` seconds."""
    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    children = parent.children(recursive=True)
    for proc in children:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(children, timeout=grace / 2)
    try:
        parent.terminate()
    except psutil.NoSuchProcess:
        pass
    everything = [parent, *children]
    _, alive = psutil.wait_procs(everything, timeout=grace / 2)
    # anything the service started after we listed its children
    for proc in alive + [c for p in alive for c in _children(p)]:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Wait until `url` answers 200; fail early if `proc` (the server) exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


class AirflowServices:
    """`with AirflowServices(env, log_dir) as services: services.start("scheduler", "scheduler")`.

    `env` is the whole environment of every service (nothing else leaks in); each service's
    output goes to `<log_dir>/<name>.log`. Leaving the block stops them, last started first.
    """

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *argv: str) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{name}.log").open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "airflow", *argv], env=self.env, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                # `-m` puts the current folder on the import path: Airflow's home, never the repo
                cwd=self.env.get("AIRFLOW_HOME"),
            )
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"airflow {name} exited ({proc.returncode}):\n{self.log(name)[-3000:]}")

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            stop_tree(self.procs.pop(name).pid)

    def __enter__(self) -> AirflowServices:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
