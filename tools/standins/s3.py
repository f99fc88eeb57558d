"""A real S3 API on loopback: moto's server mode in a thread of this process.

moto's in-process `mock_aws()` does not work with dlt/s3fs (aiobotocore's awaits on moto's
patched responses fail); its server over HTTP does. The server counts object reads (GET of a key),
so tests and benchmarks can prove which files a run opened without touching our code.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote

# Fake, fixed credentials: moto accepts any; nothing here reaches AWS.
ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"  # noqa: S105 - a stand-in's dummy value
REGION = "us-east-1"


class _ReadCounter:
    """WSGI middleware counting GETs of object keys (not listings) per `bucket/key`."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.reads: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Any) -> Any:
        path = unquote(environ.get("PATH_INFO", ""))
        if environ.get("REQUEST_METHOD") == "GET" and path.count("/") >= 2 and not path.endswith("/"):
            if not environ.get("QUERY_STRING", "").startswith(("list-type", "prefix", "delimiter")):
                with self._lock:
                    self.reads[path.lstrip("/")] += 1
        return self.app(environ, start_response)


@dataclass
class S3Server:
    """`start()`, `create_bucket()`, `upload_folder()`, then pass `source_kwargs(bucket)`."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port, chosen at start
    _server: Any = field(default=None, repr=False)
    _counter: _ReadCounter | None = field(default=None, repr=False)

    def start(self) -> S3Server:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from moto.server import ThreadedMotoServer
        from werkzeug.serving import make_server

        owner = self

        class _CountingMotoServer(ThreadedMotoServer):
            def _server_entry(self) -> None:  # moto's own, with the counter around the app
                owner._counter = _ReadCounter(DomainDispatcherApplication(create_backend_app))
                self._server = make_server(
                    self._ip_address, self._port, owner._counter, True, request_handler=MotoRequestHandler
                )
                self._server_ready_event.set()
                self._server.serve_forever()

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        self._server = _CountingMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def create_bucket(self, bucket: str) -> str:
        self.client().create_bucket(Bucket=bucket)
        return f"s3://{bucket}"

    def upload_folder(self, folder: Path, bucket: str, prefix: str = "") -> list[str]:
        """Upload every file below `folder` to `bucket`, keys = paths relative to `folder`."""
        client, keys = self.client(), []
        for path in _files(Path(folder)):
            key = "/".join(p for p in (prefix.strip("/"), path.relative_to(folder).as_posix()) if p)
            client.upload_file(str(path), bucket, key)
            keys.append(key)
        return keys

    def put(self, bucket: str, key: str, body: bytes) -> None:
        self.client().put_object(Bucket=bucket, Key=key, Body=body)

    def delete(self, bucket: str, key: str) -> None:
        self.client().delete_object(Bucket=bucket, Key=key)

    def reads(self) -> Counter[str]:
        """GETs per `bucket/key` since start (or the last `reset_reads()`)."""
        return Counter(self._counter.reads) if self._counter else Counter()

    def reset_reads(self) -> None:
        if self._counter:
            self._counter.reads.clear()

    def source_kwargs(self, bucket: str) -> dict[str, str]:
        """What the s3_exports source needs to read `bucket` here (as the Airflow connection gives)."""
        return {
            "bucket_url": f"s3://{bucket}",
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "endpoint_url": self.endpoint_url,
            "region_name": REGION,
        }

    def dlt_env(self, bucket: str) -> dict[str, str]:
        """The same as environment variables for dlt's config providers (CLI, subprocesses)."""
        return {f"SOURCES__S3_EXPORTS__{k.upper()}": v for k, v in self.source_kwargs(bucket).items()}


class S3Process(S3Server):
    """The same server in a child process: benchmarks keep its CPU (GIL) and memory out of
    the loader they measure. Object reads are not counted here."""

    _proc: Any = None

    def start(self) -> S3Process:
        import socket
        import subprocess
        import sys
        import time

        if not self.port:
            with socket.socket() as sock:
                sock.bind((self.host, 0))
                self.port = sock.getsockname()[1]
        root = Path(__file__).resolve().parents[2]
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tools.standins.s3", "--host", self.host, "--port", str(self.port)],
            cwd=root,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex((self.host, self.port)) == 0:
                    return self
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto server exited with code {self._proc.returncode}")
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not listen on {self.endpoint_url} within 30 s")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None

    def reads(self) -> Counter[str]:
        raise NotImplementedError("reads are counted by the in-thread S3Server only")


def _files(folder: Path) -> Iterator[Path]:
    for root, _, names in os.walk(folder):
        for name in sorted(names):
            yield Path(root) / name


if __name__ == "__main__":
    import argparse
    import threading as _threading

    parser = argparse.ArgumentParser(description="moto S3 server on loopback (dummy credentials)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    server = S3Server(host=args.host, port=args.port).start()
    print(f"S3 stand-in on {server.endpoint_url}", flush=True)
    _threading.Event().wait()
