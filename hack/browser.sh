#!/usr/bin/env bash
# Installs the browser of the UI test (tests/e2e/test_ui_approval.py): Debian's chromium at /usr/bin/chromium.
# Playwright (a Python package, from pyproject's `test` extra) drives it; `playwright install` is not used
# (it downloads browser builds, which these machines cannot fetch).
# Idempotent: does nothing when /usr/bin/chromium is there. Otherwise apt-get (as root, or through passwordless
# sudo), each step bounded by a timeout; any failure ends the script with a message and a non-zero exit.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
APT_TIMEOUT=${GREENLIGHT_APT_TIMEOUT:-600}

if [[ -x $CHROMIUM ]]; then
  exit 0
fi

fail() { echo "hack/browser.sh: $*" >&2; exit 1; }

command -v apt-get >/dev/null || fail "$CHROMIUM is missing and there is no apt-get: install Chromium by hand" \
  "(or set GREENLIGHT_CHROMIUM to a Chromium binary for the tests)"
if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  fail "$CHROMIUM is missing; installing it needs root: sudo apt-get install -y chromium"
fi

echo "hack/browser.sh: installing Debian's chromium (apt-get, up to ${APT_TIMEOUT} s per step)" >&2
export DEBIAN_FRONTEND=noninteractive
timeout "$APT_TIMEOUT" "${as_root[@]}" apt-get update -q \
  || fail "apt-get update failed or took longer than ${APT_TIMEOUT} s"
timeout "$APT_TIMEOUT" "${as_root[@]}" apt-get install -y -q chromium \
  || fail "apt-get install chromium failed or took longer than ${APT_TIMEOUT} s"

[[ -x $CHROMIUM ]] || fail "apt-get installed chromium but $CHROMIUM is not there"
version=$(timeout 60 "$CHROMIUM" --headless=new --no-sandbox --version 2>/dev/null) \
  || fail "$CHROMIUM was installed but does not start"
echo "hack/browser.sh: $version" >&2
