"""`make airflow`: a project-local Airflow with its UI, on the demo's settings, until Ctrl-C.

Airflow's services as separate processes — api-server, scheduler (LocalExecutor), dag-processor,
triggerer — on the demo's metadata DB (`.airflow/`, SQLite), DuckDB warehouse and connections;
the Everflow/RedTrack stand-in and the synthetic S3 exports stay alive as long as this runs, so
DAGs triggered from the UI load real rows. Prints the UI's URL and login. Ctrl-C (or SIGTERM)
stops every service, children first, then the stand-in.

    SIGNALROOM_AIRFLOW_PORT   the UI/API port (default 8080; a free one if 8080 is taken)
    SIGNALROOM_DEMO_DIR       moves all state, as for the demo (tests use a temp folder)
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading

from tools import demo, localenv
from tools.airflow_services import AirflowServices, wait_http
from tools.standins.postgres import free_port

USER = "admin"


def _port() -> int:
    wanted = int(os.environ.get("SIGNALROOM_AIRFLOW_PORT") or 8080)
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", wanted))
            return wanted
        except OSError:
            return free_port()


def _say(message: str) -> None:
    print(f"[airflow] {message}", flush=True)


def service_env(base: dict[str, str], port: int, password_file: str) -> dict[str, str]:
    """Every service's environment: the demo's, plus what makes them one Airflow."""
    return {
        **base,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        # one secret for every service, so the API server accepts the workers' tokens
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": password_file,
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
    }


def main() -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    base = {**os.environ, **localenv.apply(demo.AIRFLOW_HOME, demo.DLT_DIR)}
    from tools.standins.api import ApiStandin

    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True,
                   env=base, cwd=demo.AIRFLOW_HOME)
    demo.prepare_exports()
    api = ApiStandin(everflow_key=demo.DEMO_KEYS["everflow"], redtrack_key=demo.DEMO_KEYS["redtrack"]).start()
    try:
        demo.apply_connections(api.url)
        _say(f"API stand-in on {api.url}; exports in {demo.EXPORTS}; warehouse {demo.WAREHOUSE}")
        port = _port()
        password = secrets.token_urlsafe(9)
        password_file = demo.AIRFLOW_HOME / "simple_auth_manager_passwords.json"
        password_file.write_text(json.dumps({USER: password}))
        password_file.chmod(0o600)
        env = service_env(base, port, str(password_file))
        with AirflowServices(env, demo.AIRFLOW_HOME / "services") as services:
            api_server = services.start("api-server", "api-server")
            services.start("dag-processor", "dag-processor")
            wait_http(f"http://127.0.0.1:{port}/api/v2/monitor/health", 240, api_server)
            services.start("scheduler", "scheduler")
            services.start("triggerer", "triggerer")
            _say(f"Airflow UI: http://127.0.0.1:{port}  login: {USER} / {password}")
            _say(f"service logs in {services.log_dir}; DAGs start paused: unpause or trigger them in the UI")
            _say("Ctrl-C stops everything")
            while not stop.wait(2):
                services.check_alive()
            _say("stopping: scheduler's workers first, then every service")
    finally:
        api.stop()
    _say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
