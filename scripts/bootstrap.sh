#!/usr/bin/env bash
# Create .venv with Python 3.11 and install exactly the lock (uv; seconds, not pip's minutes).
# Idempotent: does nothing when the venv already matches requirements.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
stamp=.venv/.lock.sha256
want=$(sha256sum requirements.lock | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/python ]; then
  exit 0
fi
echo "bootstrap: installing requirements.lock into .venv" >&2
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==0.13.8"
.venv/bin/uv pip sync --quiet --compile-bytecode --python .venv/bin/python requirements.lock
echo "$want" > "$stamp"
