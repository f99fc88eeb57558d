#!/usr/bin/env bash
# System packages the test suite needs beyond the Python lock: a headless Chromium for the
# plugin page test (tests/test_plugin_api.py) and Redis, the Celery broker of the distributed
# tests (tests/test_celery.py starts its own redis-server on a free loopback port).
# Idempotent: does nothing when both are present. Debian/Ubuntu only; elsewhere install them
# yourself (or set SIGNALROOM_CHROMIUM / SIGNALROOM_REDIS_SERVER).
set -euo pipefail
missing=()
have_chromium=""
for bin in "${SIGNALROOM_CHROMIUM:-}" chromium chromium-browser google-chrome; do
  if [ -n "$bin" ] && command -v "$bin" >/dev/null 2>&1; then
    have_chromium=1
    break
  fi
done
[ -n "$have_chromium" ] || missing+=(chromium fonts-liberation)
command -v "${SIGNALROOM_REDIS_SERVER:-redis-server}" >/dev/null 2>&1 || missing+=(redis-server)
[ "${#missing[@]}" -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing ${missing[*]} and no apt-get; install them for the plugin page and Celery tests" >&2
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "system-deps: installing ${missing[*]} (apt)" >&2
# several processes may run apt at once (CI, other checkouts): wait for dpkg's lock
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# the package's own service is not ours to run: the tests start redis-server themselves
if [[ " ${missing[*]} " == *" redis-server "* ]] && command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
