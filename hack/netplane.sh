#!/usr/bin/env bash
# Installs what the local cluster's Service data path needs (tests/cluster/netplane.py: kube-proxy in nftables
# mode inside a network namespace): Debian's nftables (`nft`) and iproute2 (`ip netns`).
# Idempotent: does nothing when both commands are there. Otherwise apt-get (as root, or through passwordless
# sudo), each step bounded by a timeout; any failure ends the script with a message and a non-zero exit.
# The kernel side (network namespaces, nf_tables with NAT) is checked by the launcher when the cluster starts.
set -euo pipefail

APT_TIMEOUT=${GREENLIGHT_APT_TIMEOUT:-600}
PATH=$PATH:/usr/sbin:/sbin

have() { command -v "$1" >/dev/null; }
if have nft && have ip; then
  exit 0
fi

fail() { echo "hack/netplane.sh: $*" >&2; exit 1; }

packages=()
have nft || packages+=(nftables)
have ip || packages+=(iproute2)
command -v apt-get >/dev/null || fail "missing ${packages[*]} and there is no apt-get: install them by hand"
if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  fail "missing ${packages[*]}; installing needs root: sudo apt-get install -y ${packages[*]}"
fi

echo "hack/netplane.sh: installing ${packages[*]} (apt-get, up to ${APT_TIMEOUT} s per step)" >&2
export DEBIAN_FRONTEND=noninteractive
timeout "$APT_TIMEOUT" "${as_root[@]}" apt-get update -q \
  || fail "apt-get update failed or took longer than ${APT_TIMEOUT} s"
timeout "$APT_TIMEOUT" "${as_root[@]}" apt-get install -y -q "${packages[@]}" \
  || fail "apt-get install ${packages[*]} failed or took longer than ${APT_TIMEOUT} s"

have nft || fail "apt-get installed nftables but there is no nft command"
have ip || fail "apt-get installed iproute2 but there is no ip command"
echo "hack/netplane.sh: $(nft --version)" >&2
