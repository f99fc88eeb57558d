"""A Slack incoming-webhook stand-in on loopback: records every posted JSON body.

Answers like Slack (`200 ok`), so Airflow's Slack provider treats a post as delivered.
Use it as a context manager in tests and the demo; point the Airflow connection
`signalroom_slack` at `receiver.url` (see `connection()`).

    with WebhookReceiver() as hook:
        env = localenv.airflow_connection_env("signalroom_slack", hook.connection())
        ...
        hook.wait_for(1)            # posted bodies, oldest first

`python -m tools.standins.webhook [--port N]` runs one in the foreground and prints posts.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WEBHOOK_PATH = "/services/T000/B000/standin"


class WebhookReceiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, path: str = WEBHOOK_PATH) -> None:
        self.path = path
        self.posts: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path != receiver.path:
                    self._answer(404, "no_service")
                    return
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    self._answer(400, "invalid_payload")
                    return
                with receiver._arrived:
                    receiver.posts.append(body)
                    receiver._arrived.notify_all()
                self._answer(200, "ok")

            def _answer(self, status: int, text: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.path}"

    def connection(self) -> dict[str, Any]:
        """An Airflow `slackwebhook` connection (JSON form) posting here. The webhook URL is the
        password, as for a real Slack webhook (the provider accepts a full URL there)."""
        return {"conn_type": "slackwebhook", "password": self.url}

    def start(self) -> WebhookReceiver:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def clear(self) -> None:
        with self._lock:
            self.posts.clear()

    def texts(self) -> list[str]:
        with self._lock:
            return [str(p.get("text", "")) for p in self.posts]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The posts once at least `count` arrived; AssertionError naming what came after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.posts) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"webhook stand-in got {len(self.posts)} post(s) in {timeout:.0f} s, expected "
                        f"{count}: {[p.get('text', '')[:80] for p in self.posts]}"
                    )
                self._arrived.wait(left)
            return list(self.posts)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with WebhookReceiver(port=args.port) as receiver:
        print(f"webhook stand-in at {receiver.url}", flush=True)
        print(f"AIRFLOW_CONN_SIGNALROOM_SLACK='{json.dumps(receiver.connection())}'", flush=True)
        seen = 0
        try:
            while True:
                posts = receiver.wait_for(seen + 1, timeout=3600)
                for post in posts[seen:]:
                    print(json.dumps(post, indent=2), flush=True)
                seen = len(posts)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
