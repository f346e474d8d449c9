#!/usr/bin/env bash
# A kind cluster for greenlight, where Docker and kind exist (`make cluster CLUSTER=kind` / `make cluster-down
# CLUSTER=kind`). This script downloads no binaries: docker and kind must already be on PATH (kind itself pulls
# its node image through Docker the first time).
#
#   bash hack/cluster/kind.sh up     create cluster `greenlight` (no-op if it exists), kubeconfig in
#                                    $GREENLIGHT_CACHE/kind/kubeconfig (default .cache/kind/kubeconfig), build the
#                                    stand-in app image greenlight/servicedemo:dev from hack/kind/app and load it;
#                                    prints, last and alone on stdout, `export KUBECONFIG=<absolute path>`
#   bash hack/cluster/kind.sh down   delete the cluster and its kubeconfig
#
# Everything but that export line goes to stderr, so `eval "$(bash hack/cluster/kind.sh up)"` works.
# Optional: KIND_NODE_IMAGE (kind's --image, e.g. kindest/node:v1.34.0@sha256:...), KIND_WAIT (default 120s).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cluster=greenlight
image=greenlight/servicedemo:dev
app_dir=$root/hack/kind/app
cache=${GREENLIGHT_CACHE:-$root/.cache}

log() { printf '[kind] %s\n' "$*" >&2; }
die() { printf '[kind] error: %s\n' "$*" >&2; exit 1; }
usage() { echo "usage: bash hack/cluster/kind.sh up|down" >&2; exit 2; }

need() {
  local missing=()
  command -v docker >/dev/null 2>&1 || missing+=(docker)
  command -v kind >/dev/null 2>&1 || missing+=(kind)
  if ((${#missing[@]})); then
    local what
    what=$(printf '%s and ' "${missing[@]}")
    die "${what% and } not found on PATH. CLUSTER=kind needs Docker (https://docs.docker.com/get-docker/) and kind \
(https://kind.sigs.k8s.io/docs/user/quick-start/#installation); without them use the local cluster: make cluster"
  fi
  docker info >/dev/null 2>&1 || die "docker is installed but its daemon is not reachable (is Docker running? \
may this user talk to it?)"
}

exists() { kind get clusters 2>/dev/null | grep -qx "$cluster"; }

kubeconfig_path() {
  # Absolute, even when GREENLIGHT_CACHE is relative.
  mkdir -p "$cache/kind"
  printf '%s/kubeconfig\n' "$(cd "$cache/kind" && pwd)"
}

up() {
  local kubeconfig
  kubeconfig=$(kubeconfig_path)
  if exists; then
    log "cluster '$cluster' already exists: not creating it"
    # Rewrite the kubeconfig in case it was removed; kind writes only this file, never ~/.kube/config here.
    kind export kubeconfig --name "$cluster" --kubeconfig "$kubeconfig" >&2
  else
    log "creating cluster '$cluster'"
    local args=(create cluster --name "$cluster" --kubeconfig "$kubeconfig" --wait "${KIND_WAIT:-120s}")
    if [[ -n ${KIND_NODE_IMAGE:-} ]]; then args+=(--image "$KIND_NODE_IMAGE"); fi
    kind "${args[@]}" >&2
  fi
  chmod 600 "$kubeconfig"

  log "building $image from ${app_dir#"$root"/}"
  docker build -t "$image" "$app_dir" >&2
  log "loading $image into '$cluster'"
  kind load docker-image "$image" --name "$cluster" >&2

  log "ready. Pods using $image need imagePullPolicy IfNotPresent or Never: it exists only inside the cluster."
  log "e2e tests against it: GREENLIGHT_TEST_KUBECONFIG=$kubeconfig make e2e"
  printf 'export KUBECONFIG=%s\n' "$kubeconfig"
}

down() {
  local kubeconfig
  kubeconfig=$(kubeconfig_path)
  if exists; then
    log "deleting cluster '$cluster'"
    kind delete cluster --name "$cluster" --kubeconfig "$kubeconfig" >&2
  else
    log "no cluster '$cluster': nothing to delete"
  fi
  rm -f "$kubeconfig"
  rmdir "$(dirname "$kubeconfig")" 2>/dev/null || true
}

[[ $# -eq 1 ]] || usage
case $1 in
  up) need; up ;;
  down) need; down ;;
  *) usage ;;
esac
