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

case "${1:-up}" in
up)
  mkdir -p "$home"
  if healthy; then echo "Prefect server already up at $url" >&2
  else
    PREFECT_HOME=$home PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_UI_API_URL=$url \
      setsid "$root/.venv/bin/prefect" server start --host 127.0.0.1 --port "$port" >"$home/server.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 120); do healthy && break; sleep 0.5; done
    healthy || { echo "Prefect server did not start; see $home/server.log" >&2; exit 1; }
    echo "Prefect server up at $url (UI: http://127.0.0.1:$port)" >&2
  fi
  echo "export PREFECT_API_URL=$url"
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
