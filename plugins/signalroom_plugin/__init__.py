"""SignalRoom's Airflow plugin: the pipeline-state app (JSON API + page) and its UI links.

Airflow imports every .py file of the plugins folder by file name; the app lives in `web/`
(skipped through `.airflowignore`) and is imported from here as a normal package.
The maintenance operators live in `signalroom.orchestration.maintenance`, used by the
`signalroom_maintenance` DAG.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from airflow.plugins_manager import AirflowPlugin

# The plugin imports the package of the checkout it sits in (<checkout>/plugins/ -> include/),
# appended, never first: in a process that also parsed a DAG file, the bundle version's package
# (include/bundle_path.py) stays the one imported.
if importlib.util.find_spec("signalroom") is None:
    sys.path.append(str(Path(__file__).resolve().parents[2] / "include"))

from signalroom_plugin.web import URL_PREFIX  # noqa: E402

# relative hrefs: the UI resolves them against its base URL, so a sub-path deployment works
_STATE_PAGE = URL_PREFIX.lstrip("/") + "/"
_COMPLETENESS_PAGE = URL_PREFIX.lstrip("/") + "/completeness"


class StateApp:
    """The state app (ASGI), imported on its first request.

    Every task process loads the plugins (Airflow adds their macros to each task's context);
    importing the FastAPI app and Airflow's API security modules there cost ~1.3 s per task
    (bench/bench_p3_orchestration.py). Only the API server ever serves it.
    """

    _app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if StateApp._app is None:
            from signalroom_plugin.web.app import app

            StateApp._app = app
        await StateApp._app(scope, receive, send)


class SignalRoomPlugin(AirflowPlugin):
    name = "signalroom"
    fastapi_apps = [{"app": StateApp(), "url_prefix": URL_PREFIX, "name": "SignalRoom pipeline state"}]
    external_views = [
        {
            "name": "Pipeline state",
            "href": _STATE_PAGE,
            "destination": "nav",
            "url_route": "signalroom-state",
            "category": "browse",
        },
        {
            # a tab on every DAG's page; the page shows the pipelines of that DAG
            "name": "Pipeline state",
            "href": _STATE_PAGE + "?dag_id={DAG_ID}",
            "destination": "dag",
            "url_route": "signalroom-dag-state",
        },
        {
            "name": "Completeness",
            "href": _COMPLETENESS_PAGE,
            "destination": "nav",
            "url_route": "signalroom-completeness",
            "category": "browse",
        },
        {
            "name": "Completeness",
            "href": _COMPLETENESS_PAGE + "?dag_id={DAG_ID}",
            "destination": "dag",
            "url_route": "signalroom-dag-completeness",
        },
    ]
