#!/usr/bin/env bash
# Installs PostgreSQL's server binaries for the tests and benchmarks that run Prefect on PostgreSQL
# (tests/e2e/test_workers_one_pool.py; bench/harness.py's throw-away server: initdb + pg_ctl as the `postgres`
# user, on a free 127.0.0.1 port). Debian's `postgresql` package; its cluster service is not used.
# Idempotent: does nothing when an initdb is on PATH or under /usr/lib/postgresql/*/bin. Otherwise apt-get (as root,
# or through passwordless sudo), each step bounded by a timeout; any failure ends with a message, non-zero.
set -euo pipefail

APT_TIMEOUT=${GREENLIGHT_APT_TIMEOUT:-600}
found() { command -v initdb >/dev/null || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }
fail() { echo "hack/postgres.sh: $*" >&2; exit 1; }

if found && id postgres >/dev/null 2>&1; then
  exit 0
fi
command -v apt-get >/dev/null || fail "PostgreSQL's initdb is missing and there is no apt-get: install a PostgreSQL" \
  "server (its initdb and pg_ctl on PATH) and a 'postgres' user by hand"
if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  fail "PostgreSQL is missing; installing it needs root: sudo apt-get install -y postgresql"
fi
echo "hack/postgres.sh: installing Debian's postgresql (apt-get, up to ${APT_TIMEOUT} s per step)" >&2
export DEBIAN_FRONTEND=noninteractive
timeout "$APT_TIMEOUT" "${as_root[@]}" apt-get update -q \
  || fail "apt-get update failed or took longer than ${APT_TIMEOUT} s"
timeout "$APT_TIMEOUT" "${as_root[@]}" apt-get install -y -q postgresql \
  || fail "apt-get install postgresql failed or took longer than ${APT_TIMEOUT} s"
found || fail "apt-get installed postgresql but no initdb is under /usr/lib/postgresql/*/bin"
id postgres >/dev/null 2>&1 || fail "apt-get installed postgresql but there is no 'postgres' user"
