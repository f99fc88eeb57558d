"""docker-compose.yaml, checked without a Docker engine: its structure with PyYAML (services,
healthchecks, pinned images, environment, volumes), its agreement with airflow_settings.yaml,
the Dockerfile and tools/localenv.py, and `docker compose config` where a compose CLI exists."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tools import localenv

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yaml"
AIRFLOW_VERSION = "3.3.2"
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
# where tasks run: LocalExecutor -> scheduler, CeleryExecutor -> worker; plus the two that
# run bundle code too (deadline callbacks in the triggerer, DAG parsing)
DLT_VOLUME_SERVICES = ("airflow-scheduler", "airflow-worker", "airflow-triggerer", "airflow-dag-processor")

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(value, env: dict[str, str] | None = None):
    """Compose's ${VAR} / ${VAR:-default} / $$ substitution, recursively, against `env`."""
    env = env or {}
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value
    return _VAR.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1)) or m.group(2) or "", value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return interpolate(yaml.safe_load(COMPOSE_FILE.read_text()))


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def mounts_of(service: dict) -> dict[str, str]:
    """container path -> source (named volume or host path) of a service's volumes."""
    result = {}
    for item in service.get("volumes", []):
        parts = item.split(":")
        result[parts[1]] = parts[0]
    return result


def test_every_service_the_bundle_needs(services):
    assert set(AIRFLOW_SERVICES) | {"airflow-init", "postgres", "warehouse", "redis", "airflow-worker"} <= set(services)


def test_long_running_services_have_healthchecks(services):
    for name, service in services.items():
        if name == "airflow-init":
            continue  # one-shot: the others wait for it to complete successfully
        check = service.get("healthcheck") or {}
        assert check.get("test") and check["test"][0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"


def test_healthchecks_match_the_service(services):
    """Each Airflow component is checked by its own probe (not a copy-paste of another's)."""
    def probe(name):
        return " ".join(services[name]["healthcheck"]["test"][1:])

    assert "/api/v2/monitor/health" in probe("airflow-apiserver")
    assert ":8974/health" in probe("airflow-scheduler")
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
    assert "--job-type DagProcessorJob" in probe("airflow-dag-processor")
    assert "--job-type TriggererJob" in probe("airflow-triggerer")
    assert "inspect ping" in probe("airflow-worker")
    assert "pg_isready" in probe("postgres") and "pg_isready" in probe("warehouse")
    assert "redis-cli" in probe("redis")


def test_components_run_their_command(services):
    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES + ("airflow-worker",)}
    assert commands == {
        "airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer",
        "airflow-worker": "celery worker",
    }


def test_airflow_services_wait_for_init_and_metadata_db(services):
    for name in AIRFLOW_SERVICES + ("airflow-worker",):
        deps = services[name]["depends_on"]
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
        assert deps["postgres"]["condition"] == "service_healthy", name
    for name in ("airflow-scheduler", "airflow-worker"):  # where loads run
        assert services[name]["depends_on"]["warehouse"]["condition"] == "service_healthy"
    assert services["airflow-worker"]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_images_are_pinned(services):
    for name, service in services.items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: image {image!r} has no pinned tag"
        assert re.match(r"\d+\.\d+", tag), f"{name}: tag {tag!r} is not a version"


def test_airflow_image_is_built_from_the_pinned_official_image_and_the_lock(services):
    dockerfile = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.M)
    assert froms == [f"apache/airflow:{AIRFLOW_VERSION}-python3.11"]
    assert re.search(r"^RUN uv pip install .*-r \S*requirements\.lock", dockerfile, flags=re.M)
    assert f"apache-airflow=={AIRFLOW_VERSION}\n" in (ROOT / "requirements.lock").read_text()
    for name in AIRFLOW_SERVICES + ("airflow-worker", "airflow-init"):
        assert services[name]["build"] in (".", {"context": "."}), name
        assert services[name]["image"].endswith(f":{AIRFLOW_VERSION}"), name
    rules = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules == ["*", "!requirements.lock"]  # the context holds the lock only: no .venv, no data


def test_local_executor_by_default_celery_in_its_profile(services):
    for name in AIRFLOW_SERVICES:
        assert services[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert not services[name].get("profiles"), f"{name} must run without a profile"
    for name in ("postgres", "warehouse", "airflow-init"):
        assert not services[name].get("profiles")
    assert services["redis"]["profiles"] == ["celery"]
    assert services["airflow-worker"]["profiles"] == ["celery"]
    raw = yaml.safe_load(COMPOSE_FILE.read_text())["x-airflow-common"]["environment"]
    assert interpolate(raw, {"AIRFLOW_EXECUTOR": "CeleryExecutor"})["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_environment_points_airflow_at_the_services(services):
    for name in AIRFLOW_SERVICES + ("airflow-worker", "airflow-init"):
        env = env_of(services[name])
        db = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        postgres = env_of(services["postgres"])
        assert (db.hostname, db.username, db.password, db.path.lstrip("/")) == (
            "postgres", postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"]
        ), name
        broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
        assert broker.scheme == "redis" and broker.hostname == "redis", name
        api = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
        assert api.hostname == "airflow-apiserver" and api.path == "/execution/", name
        assert api.port == int(services["airflow-apiserver"]["ports"][0].split(":")[-1]), name
        assert env["AIRFLOW_CONFIG"].startswith("/opt/airflow/config/")
        assert mounts_of(services[name])["/opt/airflow/config"] == "airflow-config", name


def test_environment_matches_what_the_bundle_expects(services):
    """The dlt/Airflow settings tools/localenv.py gives local runs hold in the containers too."""
    expected = localenv.airflow_env(Path("/x"), Path("/y"))
    path_specific = {"AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__PLUGINS_FOLDER",
                     "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__LOGGING__BASE_LOG_FOLDER",
                     "AIRFLOW__CORE__FERNET_KEY",
                     "PYTHONPATH", "DLT_DATA_DIR", "AIRFLOW__CORE__PARALLELISM",
                     # test-only switches
                     "AIRFLOW__CORE__UNIT_TEST_MODE", "SIGNALROOM_TASK_RETRIES",
                     # local dag.test() runs only: the stack's scheduler evaluates deadlines
                     "SIGNALROOM_DEADLINE_ET"}
    for name in AIRFLOW_SERVICES + ("airflow-worker",):
        env = env_of(services[name])
        for key in expected.keys() - path_specific:
            assert env.get(key, "").lower() == expected[key].lower(), f"{name}: {key}={env.get(key)!r}"
        assert env["PROVIDERS__ENABLE_AIRFLOW_SECRETS"] == "false"
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"


def test_the_repository_is_mounted_as_a_dag_bundle_without_pythonpath(services):
    """As in any Airflow the bundle is dropped into: a LocalDagBundle of the repository, its
    plugins folder, and nothing on PYTHONPATH (the DAG files make include/ importable)."""
    import json

    for name in AIRFLOW_SERVICES + ("airflow-worker", "airflow-init"):
        env, mounts = env_of(services[name]), mounts_of(services[name])
        assert "PYTHONPATH" not in env, name
        assert mounts["/opt/airflow/signalroom"] == ".", name
        (bundle,) = json.loads(env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])
        assert bundle["classpath"] == "airflow.dag_processing.bundles.local.LocalDagBundle", name
        assert bundle["kwargs"]["path"] == "/opt/airflow/signalroom", name
        assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == "/opt/airflow/signalroom/plugins", name
    assert not re.search(r"PYTHONPATH\s*=", (ROOT / "Dockerfile").read_text())
    for folder in ("include/signalroom", "dags", "plugins/signalroom_plugin"):
        assert (ROOT / folder).is_dir()


def test_dlt_working_folder_is_one_named_volume_shared_by_task_runners(compose, services):
    sources = set()
    for name in DLT_VOLUME_SERVICES:
        env, mounts = env_of(services[name]), mounts_of(services[name])
        folder = env["DLT_DATA_DIR"]
        assert folder in mounts, f"{name}: DLT_DATA_DIR {folder} is not mounted"
        sources.add(mounts[folder])
    assert len(sources) == 1, f"task runners must share one dlt folder, got {sources}"
    (volume,) = sources
    assert not volume.startswith((".", "/")) and volume in compose["volumes"], "must be a named volume"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "/opt/airflow/dlt_data" in dockerfile  # exists in the image, so the volume is writable


def test_init_migrates_and_applies_the_settings_with_the_bundle_loader(services):
    init = services["airflow-init"]
    script = "\n".join(init["command"]) if isinstance(init["command"], list) else init["command"]
    assert "set -euo pipefail" in script  # a failing step fails the init, and the stack waits
    assert "airflow db migrate" in script
    match = re.search(r"cd (\S+)\s+python -m (signalroom\.deploy\.airflow_settings) apply (\S+)", script)
    assert match, "init must apply airflow_settings.yaml with the bundle's loader, from include/"
    folder, module, target = match.groups()
    assert folder == "/opt/airflow/signalroom/include"
    assert (ROOT / "include" / (module.replace(".", "/") + ".py")).is_file()
    assert target == "/opt/airflow/signalroom/airflow_settings.yaml"
    assert mounts_of(init)["/opt/airflow/signalroom"] == "."
    assert script.index("airflow db migrate") < script.index(match.group(0))
    passwords = env_of(init)["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    assert passwords.startswith("/opt/airflow/config/") and "_AIRFLOW_WWW_USER_PASSWORD" in script


def test_warehouse_connection_from_settings_reaches_the_warehouse_service(services):
    """airflow_settings.yaml names the warehouse service with the credentials that service is
    created with."""
    from signalroom.deploy.airflow_settings import load_settings

    init_env = env_of(services["airflow-init"])
    settings = load_settings(ROOT / "airflow_settings.yaml", env=init_env)
    (conn,) = [c for c in settings.connections if c.conn_id == "signalroom_warehouse"]
    warehouse = env_of(services["warehouse"])
    assert (conn.conn_type, conn.host, conn.port, conn.login, conn.password, conn.schema) == (
        "postgres", "warehouse", 5432, warehouse["POSTGRES_USER"], warehouse["POSTGRES_PASSWORD"],
        warehouse["POSTGRES_DB"],
    )
    assert conn.extra.get("sslmode") == "disable"
    pools = {p.name for p in settings.pools}
    assert env_of(services["airflow-scheduler"])["SIGNALROOM_LOAD_POOL"] in pools
    # no Slack connection in the file: alerts stay quiet until AIRFLOW_CONN_SIGNALROOM_SLACK is given
    assert "signalroom_slack" not in {c.conn_id for c in settings.connections}
    # the file's own values: no placeholder is left for the init service's environment to fill
    assert settings == load_settings(ROOT / "airflow_settings.yaml", env={})


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_accepts_the_file():
    """The compose CLI's own validation (no engine needed); skipped where no CLI is installed."""
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no `docker compose` / `docker-compose` CLI on this machine; structure checked above")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    for profile in ([], ["--profile", "celery"]):
        out = subprocess.run([*cli, "-f", str(COMPOSE_FILE), *profile, "config"],
                             capture_output=True, text=True, env=env, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        resolved = yaml.safe_load(out.stdout)
        assert set(AIRFLOW_SERVICES) <= set(resolved["services"])


def test_celery_profile_uses_the_settings_of_the_distributed_test(services):
    """The compose `celery` profile and tests/test_celery.py's stack: same executor, broker and
    result backend kinds, execution API path, worker concurrency and queue; the same bundle env."""
    from tests.support.celery import stack_env

    test = stack_env(meta_url="postgresql://u:p@h:1/meta", redis_url="redis://127.0.0.1:1/0", api_port=1,
                     home=Path("/tmp/unused"))
    raw = yaml.safe_load(COMPOSE_FILE.read_text())["x-airflow-common"]["environment"]
    common = interpolate(raw, {"AIRFLOW_EXECUTOR": "CeleryExecutor"})
    worker = env_of(services["airflow-worker"])
    assert common["AIRFLOW__CORE__EXECUTOR"] == test["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert common["AIRFLOW__CELERY__BROKER_URL"].split(":")[0] == test["AIRFLOW__CELERY__BROKER_URL"].split(":")[0]
    assert common["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert test["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert common["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith("/execution/")
    assert test["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith("/execution/")
    assert worker["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == test["AIRFLOW__CELERY__WORKER_CONCURRENCY"]
    for key in ("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "RUNTIME__LOG_LEVEL", "DLT_TELEMETRY_DISABLED"):
        assert str(common[key]).lower() == str(test[key]).lower(), key
