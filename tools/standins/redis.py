"""A throwaway Redis (the Celery broker of the distributed tests): Debian's `redis-server` on a
free loopback port, nothing persisted, stopped with the test session.

Never the machine's own Redis on 6379: other programs may use it, and tests must not share
state with them. `scripts/system-deps.sh` installs the package when it is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools.standins.postgres import free_port

ENV_BINARY = "SIGNALROOM_REDIS_SERVER"


def redis_binary() -> str | None:
    return shutil.which(os.environ.get(ENV_BINARY) or "redis-server")


@dataclass
class RedisServer:
    host: str
    port: int
    _proc: subprocess.Popen | None = field(default=None, repr=False)
    _dir: Path | None = field(default=None, repr=False)

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def ping(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def start_redis(timeout: float = 20) -> RedisServer:
    binary = redis_binary()
    if binary is None:
        raise RuntimeError(
            "redis-server not found: run scripts/system-deps.sh (installs Debian's redis-server) "
            f"or set {ENV_BINARY} to its path"
        )
    folder = Path(tempfile.mkdtemp(prefix="signalroom-redis-"))
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--daemonize", "no", "--protected-mode", "yes"],
        stdout=(folder / "redis.log").open("w"), stderr=subprocess.STDOUT,
    )
    server = RedisServer("127.0.0.1", port, proc, folder)
    deadline = time.monotonic() + timeout
    while not server.ping():
        if proc.poll() is not None or time.monotonic() > deadline:
            log = (folder / "redis.log").read_text()[-2000:]
            server.stop()
            raise RuntimeError(f"redis-server on port {port} did not start: {log}")
        time.sleep(0.05)
    return server
