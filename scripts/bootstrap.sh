#!/usr/bin/env bash
# Create .venv with Python 3.11 and install exactly the development lock (uv; seconds, not pip's
# minutes): requirements-dev.lock = the runtime lock (requirements.lock, what runs in Airflow and
# the image) plus the test and tooling set, compiled against it so both pin the same versions.
# Idempotent: does nothing when the venv already matches both locks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
stamp=.venv/.lock.sha256
want=$(cat requirements.lock requirements-dev.lock | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/python ]; then
  exit 0
fi
echo "bootstrap: installing requirements-dev.lock (runtime + dev) into .venv" >&2
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==0.13.8"
.venv/bin/uv pip sync --quiet --compile-bytecode --python .venv/bin/python requirements-dev.lock
echo "$want" > "$stamp"
