#!/usr/bin/env bash
# A local Prefect server for the demo: `up` (idempotent) / `down`. SQLite under .cache/prefect, 127.0.0.1 only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${GREENLIGHT_CACHE:-$root/.cache}
home=$cache/prefect
port=${GREENLIGHT_PREFECT_PORT:-4200}
url="http://127.0.0.1:$port/api"
pidfile=$home/server.pid

healthy() { curl -sf "$url/health" >/dev/null 2>&1; }

# Prefect's client retry as greenlight sets it for its own processes (CLIENT_RETRY_DEFAULTS in
# tasks/prefect_adapter/starting.py: 6 retries after 2, 4 ... 64 s, jitter 0.5), unless set already: in the
# server's environment (its automations' actions call its API through Prefect's client, which retries a 503) and
# exported next to PREFECT_API_URL for the shell's own clients (`prefect deployment run`, a worker started there).
# On SQLite, flow runs created at once are answered 503 "database is locked" and no server setting makes SQLite
# wait instead (measured: BENCHMARKS.md, "Burst"; README, "When to move to PostgreSQL, and how").
client_retry() {
  "$root/.venv/bin/python" -c 'import os
from prefect_greenlight.tasks.prefect_adapter.starting import CLIENT_RETRY_DEFAULTS as d
print(" ".join(f"{k}={os.environ.get(k, v)}" for k, v in d.items()))'
}

case "${1:-up}" in
up)
  mkdir -p "$home"
  retry=$(client_retry)
  if healthy; then echo "Prefect server already up at $url" >&2
  else
    # shellcheck disable=SC2086  # KEY=VALUE words
    env $retry PREFECT_HOME="$home" PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_UI_API_URL="$url" \
      setsid "$root/.venv/bin/prefect" server start --host 127.0.0.1 --port "$port" >"$home/server.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 120); do healthy && break; sleep 0.5; done
    healthy || { echo "Prefect server did not start; see $home/server.log" >&2; exit 1; }
    echo "Prefect server up at $url (UI: http://127.0.0.1:$port)" >&2
  fi
  echo "export PREFECT_API_URL=$url"
  for kv in $retry; do echo "export $kv"; done
  ;;
down)
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    rm -f "$pidfile"
    echo "Prefect server stopped" >&2
  fi
  ;;
*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
