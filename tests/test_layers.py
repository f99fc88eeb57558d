"""The layer contracts of pyproject.toml ([tool.importlinter]) hold, and they would catch a
source that imports Airflow: lint-imports on a copy of the tree with one injected import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

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


def test_a_source_importing_airflow_breaks_the_contracts(tmp_path):
    tree = _copy_tree(tmp_path)
    assert _lint_imports(tree).returncode == 0  # the copy alone is clean
    helpers = tree / "include/signalroom/sources/everflow/helpers.py"
    helpers.write_text(helpers.read_text() + "\nimport airflow  # injected by tests/test_layers.py\n")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "sources, registry and the core know nothing of Airflow BROKEN" in result.stdout
    assert "signalroom.sources.everflow.helpers -> airflow" in result.stdout


def test_a_source_importing_the_pipeline_breaks_the_layers(tmp_path):
    tree = _copy_tree(tmp_path)
    helpers = tree / "include/signalroom/sources/redtrack/helpers.py"
    helpers.write_text(helpers.read_text() + "\nimport signalroom.pipeline  # injected\n")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "layers: base <- registry <- sources" in result.stdout and "BROKEN" in result.stdout


def test_the_plugin_importing_the_dag_factory_breaks_the_contracts(tmp_path):
    tree = _copy_tree(tmp_path)
    app = tree / "plugins/signalroom_plugin/web/app.py"
    app.write_text(app.read_text() + "\nfrom signalroom.orchestration.factory import build_all_dags  # injected\n")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "the plugin knows sources only through the registry, never the DAG factory BROKEN" in result.stdout
