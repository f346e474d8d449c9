#!/usr/bin/env bash
# Build the local control plane from upstream Go modules (no Docker, no downloads of prebuilt binaries).
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  <- k8s.io/kubernetes via hack/cluster/k8s
#   etcd                                                              <- go.etcd.io/etcd/server/v3 via hack/cluster/etcd
#   kube-proxy (the local data path, in a network namespace)          <- k8s.io/kubernetes via hack/cluster/k8s
#   kwok                                                              <- sigs.k8s.io/kwok/cmd/kwok
#   traefik (the Gateway API implementation, in the same namespace)   <- github.com/traefik/traefik/v3/cmd/traefik
#     + the Gateway API standard-channel CRDs                         <- sigs.k8s.io/gateway-api config/crd/standard
# Binaries go to $GREENLIGHT_CACHE/bin/<component>-<version>/ (git-ignored); an existing directory is reused.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${GREENLIGHT_CACHE:-$root/.cache}
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
export GOMODCACHE=${GOMODCACHE:-$(go env GOMODCACHE)} GOCACHE=${GOCACHE:-$(go env GOCACHE)}

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Each target builds into a temporary directory and is renamed into place only when complete,
# so an interrupted build never leaves a half-filled cache entry behind.
build_into() {  # <dest dir> <command...>; the command writes into $out
  local dest=$1; shift
  if [ -d "$dest" ]; then log "cached: $dest"; return 0; fi
  local out; out=$(mktemp -d "$dest.tmp.XXXX")
  local t0=$SECONDS
  ( export out; "$@" )
  mv "$out" "$dest"
  log "built $(basename "$dest") in $((SECONDS - t0)) s"
}

k8s_ldflags() {
  local v=$K8S_VERSION major minor
  major=${v#v}; major=${major%%.*}; minor=${v#v*.}; minor=${minor%%.*}
  local f="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    f+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    f+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  printf '%s' "$f"
}

build_k8s() {
  cd "$here/k8s"
  go build -trimpath -ldflags "$(k8s_ldflags)" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
}
# kube-proxy has a cache entry of its own, so a control-plane entry built before it was added stays valid.
build_kube_proxy() {
  cd "$here/k8s"
  go build -trimpath -ldflags "$(k8s_ldflags)" -o "$out/" k8s.io/kubernetes/cmd/kube-proxy
}
build_etcd() {
  cd "$here/etcd"
  go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3
}
build_kwok() {
  GOBIN=$out go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  kwok_crds "$out"
}
# kwok's PortForward, ClusterPortForward and Logs CRDs, from the same module version (the launcher applies them).
KWOK_CRDS="portforwards clusterportforwards logs"
kwok_crds() {
  local dir src
  dir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  mkdir -p "$1/crds"
  for src in $KWOK_CRDS; do
    cp "$dir/kustomize/crd/bases/kwok.x-k8s.io_$src.yaml" "$1/crds/"
  done
}
# A kwok cache entry made before a CRD joined the list gets the missing ones (the binary is reused).
kwok_crds_complete() {
  local src
  for src in $KWOK_CRDS; do
    if [ ! -f "$1/crds/kwok.x-k8s.io_$src.yaml" ]; then log "adding kwok CRDs to $1"; kwok_crds "$1"; return; fi
  done
}

# Traefik's go.mod carries replace directives, so `go install ...@version` refuses it: build inside the module's
# own (read-only) directory of the module cache, with its own go.mod and go.sum (-mod=readonly: nothing changes).
module_dir() {  # <module@version> -> its directory in the module cache (downloaded if missing)
  GOFLAGS=-mod=mod go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}
build_traefik() {
  cd "$(module_dir "github.com/traefik/traefik/v3@$TRAEFIK_VERSION")"
  go build -trimpath -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" \
    -o "$out/traefik" ./cmd/traefik
  mkdir -p "$out/crds"
  cp "$(module_dir "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION")"/config/crd/standard/*.yaml "$out/crds/"
  chmod u+w "$out"/crds/*.yaml
}

mkdir -p "$cache/bin"
build_into "$cache/bin/etcd-$ETCD_VERSION" build_etcd
build_into "$cache/bin/kwok-$KWOK_VERSION" build_kwok
kwok_crds_complete "$cache/bin/kwok-$KWOK_VERSION"
build_into "$cache/bin/kubernetes-$K8S_VERSION" build_k8s
build_into "$cache/bin/kube-proxy-$K8S_VERSION" build_kube_proxy
build_into "$cache/bin/traefik-$TRAEFIK_VERSION" build_traefik
