"""The repository as Airflow sees it when deployed as a DAG bundle: a git repository of the
checkout's tracked files, and the environment of an Airflow whose only import path for our
package is the bundle itself (no PYTHONPATH)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from tools import localenv

ROOT = localenv.ROOT
_GIT = ["git", "-c", "user.email=tests@signalroom.invalid", "-c", "user.name=tests"]


def git(repo: Path, *argv: str) -> str:
    return subprocess.run([*_GIT, *argv], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def bundle_repo(dest: Path) -> Path:
    """A new git repository (branch `main`, one commit) holding the files git tracks in this
    checkout, plus new files not ignored yet: what a Git bundle of the repository checks out."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    dest.mkdir(parents=True)
    for rel in filter(None, listed):
        source = ROOT / rel
        if source.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(source.read_bytes())
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "bundle")
    return dest


def git_bundle(name: str, repo: Path) -> dict[str, Any]:
    """`dag_bundle_config_list` entry: a GitDagBundle of a local repository, refreshed often."""
    return {
        "name": name,
        "classpath": "airflow.providers.git.bundles.git.GitDagBundle",
        "kwargs": {"repo_url": str(repo), "tracking_ref": "main", "refresh_interval": 5},
    }


def local_bundle(name: str, path: Path) -> dict[str, Any]:
    return {"name": name, "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(path)}}


def bundle_env(home: Path, bundles: list[dict[str, Any]], plugins: Path) -> dict[str, str]:
    """Environment of an Airflow serving `bundles` from its own home: the suite's local
    settings, without PYTHONPATH (nothing but the bundle makes `signalroom` importable)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(localenv.airflow_env(home, home / "dlt_data"))
    env.pop("AIRFLOW__CORE__DAGS_FOLDER")
    env.update({
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(home / "bundles"),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
    })
    home.mkdir(parents=True, exist_ok=True)
    return env


def airflow(env: dict[str, str], *argv: str, timeout: float = 300) -> str:
    """One `airflow` CLI command, run from a folder outside the repository (so the current
    directory puts nothing of ours on the import path)."""
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "airflow", *argv], env=env, cwd=env["AIRFLOW_HOME"],
        capture_output=True, text=True, timeout=timeout,
    )
    assert result.returncode == 0, f"airflow {' '.join(argv)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def query(env: dict[str, str], sql: str, *args: Any) -> list[tuple]:
    """Read the metadata DB (SQLite) the services write, retrying while it is locked."""
    path = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///").split("?")[0]
    for _ in range(20):
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as con:
                return con.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            time.sleep(0.5)
    raise TimeoutError(f"{path} stayed locked")
