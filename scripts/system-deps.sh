#!/usr/bin/env bash
# System packages the test suite needs beyond the Python lock: a headless Chromium for the
# plugin page test (tests/test_plugin_api.py). Idempotent: does nothing when it is present.
# Debian/Ubuntu only; elsewhere install Chromium yourself (or set SIGNALROOM_CHROMIUM).
set -euo pipefail
for bin in "${SIGNALROOM_CHROMIUM:-}" chromium chromium-browser google-chrome; do
  if [ -n "$bin" ] && command -v "$bin" >/dev/null 2>&1; then
    exit 0
  fi
done
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: no chromium and no apt-get; install Chromium for the plugin page test" >&2
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "system-deps: installing chromium (apt)" >&2
# several processes may run apt at once (CI, other checkouts): wait for dpkg's lock
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
command -v chromium >/dev/null
