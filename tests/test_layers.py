"""The layer contracts of pyproject.toml ([tool.importlinter]) hold, and they would catch a
source that imports Airflow: lint-imports on a copy of the tree with one injected import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{root / 'include'}{os.pathsep}{root / 'plugins'}"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )


def _copy_tree(tmp_path: Path) -> Path:
    copy = tmp_path / "tree"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("include", "plugins"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def test_the_layer_contracts_hold():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_copy_alone_is_clean(tmp_path):
    assert _lint_imports(_copy_tree(tmp_path)).returncode == 0


@pytest.mark.parametrize(
    "path, injected, broken",
    [
        (
            "include/signalroom/sources/everflow/helpers.py",
            "import airflow",
            ["sources, registry and the core know nothing of Airflow BROKEN",
             "signalroom.sources.everflow.helpers -> airflow"],
        ),
        (
            "include/signalroom/sources/redtrack/helpers.py",
            "import signalroom.pipeline",
            ["layers: base <- registry <- sources", "BROKEN"],
        ),
        (
            "plugins/signalroom_plugin/web/app.py",
            "from signalroom.orchestration.factory import build_all_dags",
            ["the plugin knows sources only through the registry, never the DAG factory BROKEN"],
        ),
    ],
    ids=["source-imports-airflow", "source-imports-pipeline", "plugin-imports-factory"],
)
def test_a_forbidden_import_breaks_the_contracts(tmp_path, path, injected, broken):
    tree = _copy_tree(tmp_path)
    module = tree / path
    module.write_text(module.read_text() + f"\n{injected}  # injected by tests/test_layers.py\n")
    result = _lint_imports(tree)
    assert result.returncode != 0
    for text in broken:
        assert text in result.stdout
