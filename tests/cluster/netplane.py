"""The local cluster's network plane: a real Service data path inside a network namespace of its own.

    client in the netns -> ClusterIP (kube-proxy, nftables) -> pod IP on lo -> pod-IP server -> shared handler

The launcher creates the namespace `gl-<hash of the state dir>` (so clusters with different state dirs can
coexist), and inside it: `lo` up, the client address CLIENT_ADDR on lo, and routes for the Service CIDR and the
pod CIDR via lo with CLIENT_ADDR as source. Without a route to the VIPs, connect() fails before the nat hook; the
pinned source keeps clients off pod IPs, which come and go, and inside the cluster CIDR, so kube-proxy does not
masquerade. A pod IP that is not on lo (its pod is gone) is then routed to lo and dropped there, so a connection
to it hangs until the client's timeout, as on a real cluster; without the route it would fail at once with
"network unreachable".
Then it starts the bridge to the apiserver (tests/cluster/bridge.py), kube-proxy in nftables mode with its own
identity (system:kube-proxy, bound by the bootstrap RBAC policy to system:node-proxier), and the pod-IP server
(tests/cluster/podipd.py).

Addresses in 10.0.0.0/8 are used only inside that namespace: nothing here routes or sends to them from the root
namespace. Deleting the namespace (`down`) removes its addresses, routes and nftables tables.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.cluster.procs import NODE_NAME, POD_CIDR, ROOT, SERVICE_CIDR, STATE, log, start, wait_until

CLIENT_ADDR = "10.244.255.254"  # in the cluster CIDR, outside the node's podCIDR 10.244.0.0/24 (kwok's pod IPs)
KUBE_PROXY_HEALTHZ = 10256  # on 127.0.0.1 of the namespace (its own loopback)
KUBE_PROXY_METRICS = 10249
_BACKEND = re.compile(r"__([0-9.]+)/([0-9]+)")
PROCESSES = ("podipd", "kube-proxy", "bridge-netns", "bridge-host")  # stop order
NFT_PROBE = "table ip greenlight_probe {\n chain out {\n  type nat hook output priority -100;\n }\n}\n" \
            "delete table ip greenlight_probe\n"


def netns_name(state: Path = STATE) -> str:
    return "gl-" + hashlib.sha256(str(state.resolve()).encode()).hexdigest()[:8]


def netns_exists(name: str) -> bool:
    return (Path("/run/netns") / name).exists()


def _tool(name: str) -> str | None:
    return shutil.which(name) or next((f"{d}/{name}" for d in ("/usr/sbin", "/sbin") if os.access(f"{d}/{name}",
                                                                                                   os.X_OK)), None)


def ip() -> str:
    """The `ip` command, also when /usr/sbin is not on PATH (a non-login shell, a CI runner)."""
    return _tool("ip") or "ip"


def in_netns(name: str, argv: list[str]) -> list[str]:
    return [ip(), "netns", "exec", name, *argv]


def missing_requirements(euid: int, tools: dict[str, str | None]) -> list[str]:
    """What the host lacks for the network plane (pure: the caller observes euid and the tools' paths)."""
    out = []
    if euid != 0:
        out.append(f"root (running as uid {euid}; `ip netns add` and kube-proxy's nftables rules need it)")
    if not tools.get("ip"):
        out.append("the `ip` command (Debian package iproute2)")
    if not tools.get("nft"):
        out.append("the `nft` command (Debian package nftables: run hack/netplane.sh)")
    return out


def preflight() -> None:
    """Fail before anything starts when the host cannot run the network plane; it is never skipped."""
    missing = missing_requirements(os.geteuid(), {t: _tool(t) for t in ("ip", "nft")})
    if missing:
        raise SystemExit("the local cluster's Service data path (kube-proxy in a network namespace) needs: "
                         + "; ".join(missing))


def _run(argv: list[str], what: str, stdin: str | None = None) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, input=stdin, timeout=30)
    if proc.returncode:
        raise SystemExit(f"{what} failed (exit {proc.returncode}): {' '.join(argv)}: "
                         f"{(proc.stderr or proc.stdout).strip()}")


def create_netns(name: str) -> None:
    if netns_exists(name):
        delete_netns(name)
    _run([ip(), "netns", "add", name], "creating the network namespace (ip netns add)")
    _run([ip(), "-n", name, "link", "set", "lo", "up"], "bringing lo up in the namespace")
    _run([ip(), "-n", name, "addr", "add", f"{CLIENT_ADDR}/32", "dev", "lo"], "adding the client address")
    _run([ip(), "-n", name, "route", "add", SERVICE_CIDR, "dev", "lo", "src", CLIENT_ADDR],
         "routing the Service CIDR via lo")
    _run([ip(), "-n", name, "route", "add", POD_CIDR, "dev", "lo", "src", CLIENT_ADDR],
         "routing the pod CIDR via lo")
    _run(in_netns(name, [_tool("nft") or "nft", "-f", "-"]), "an nftables NAT table in the namespace (the kernel "
         "needs CONFIG_NF_TABLES and CONFIG_NF_NAT for kube-proxy --proxy-mode=nftables)", stdin=NFT_PROBE)


def delete_netns(name: str) -> None:
    if netns_exists(name):
        _run([ip(), "netns", "del", name], "deleting the network namespace")


def kube_proxy_argv(binary: Path, state: Path) -> list[str]:
    """kube-proxy as on a real node, with the defaults that matter kept (minSyncPeriod 1 s); only what a
    namespace on a shared host needs is changed: no conntrack sysctl outside it, no OOM score, loopback ports.
    (`--nodeport-addresses=primary` would not silence its "nodePortAddresses is unset" E-line here: the node's IP
    is 127.0.0.1, which `primary` skips. NodePorts are not part of this data path.)"""
    return [str(binary), f"--kubeconfig={state / 'kube-proxy.kubeconfig'}", "--proxy-mode=nftables",
            f"--hostname-override={NODE_NAME}", f"--cluster-cidr={POD_CIDR}", "--conntrack-max-per-core=0",
            "--oom-score-adj=0", f"--healthz-bind-address=127.0.0.1:{KUBE_PROXY_HEALTHZ}",
            f"--metrics-bind-address=127.0.0.1:{KUBE_PROXY_METRICS}"]


def _env() -> dict[str, str]:
    """For the Python processes: the repository on the path; /usr/sbin too (the pod-IP server runs `ip addr`)."""
    return {"PYTHONPATH": str(ROOT), "PATH": f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"}


def start_bridge(apiserver_port: int, state: Path = STATE) -> None:
    """Both halves of the apiserver bridge and the pod-IP server: they only need the port, so they start while
    the apiserver does."""
    name, sock = netns_name(state), state / "apiserver.sock"
    if len(str(sock)) > 100:
        raise SystemExit(f"the bridge's socket path is too long for a Unix socket ({len(str(sock))} > 100): {sock}")
    bridge = [sys.executable, "-m", "tests.cluster.bridge"]
    env = _env()
    start("bridge-host", [*bridge, "unix-to-tcp", f"--unix={sock}", f"--port={apiserver_port}",
                          f"--ready-file={state / 'bridge-host.ready'}"], env=env)
    start("bridge-netns", in_netns(name, [*bridge, "tcp-to-unix", f"--unix={sock}", f"--port={apiserver_port}",
                                          f"--ready-file={state / 'bridge-netns.ready'}"]), env=env)
    # The pod-IP server takes ~0.8 s to import its client: it starts now and lists pods once the apiserver is up.
    start("podipd", in_netns(name, [sys.executable, "-m", "tests.cluster.podipd",
                                    f"--kubeconfig={state / 'podipd.kubeconfig'}", f"--pod-cidr={POD_CIDR}",
                                    f"--ready-file={state / 'podipd.ready'}"]), env=env)


def start_proxy(kube_proxy: Path, state: Path = STATE) -> None:
    """kube-proxy, once the bridge listens and the node exists (else its first list fails and its informer backs
    off for a second or more)."""
    for side in ("bridge-host", "bridge-netns"):
        wait_until(f"the apiserver bridge ({side})", (state / f"{side}.ready").exists, 15, 0.02)
    name = netns_name(state)
    start("kube-proxy", in_netns(name, kube_proxy_argv(kube_proxy, state)), env=_env())  # it runs `nft`


def netns_python(name: str, code: str, timeout: float = 10) -> subprocess.CompletedProcess:
    """Run a few lines of stdlib Python inside the namespace (isolated mode: no site-packages, fast start)."""
    return subprocess.run(in_netns(name, [sys.executable, "-I", "-S", "-c", code]), capture_output=True,
                          text=True, timeout=timeout)


_SYNC_PROBE = f"""
import json, urllib.request
out = {{}}
with urllib.request.urlopen("http://127.0.0.1:{KUBE_PROXY_HEALTHZ}/healthz", timeout=2) as r:
    out["healthz"] = json.loads(r.read())
with urllib.request.urlopen("http://127.0.0.1:{KUBE_PROXY_METRICS}/metrics", timeout=2) as r:
    for line in r.read().decode().splitlines():
        if line.startswith("kubeproxy_sync_proxy_rules_last_timestamp_seconds"):  # has an ip_family label
            out["last_sync"] = max(out.get("last_sync", 0.0), float(line.split()[-1]))
print(json.dumps(out))
"""


def kube_proxy_sync(name: str) -> dict:
    """kube-proxy's /healthz (HTTP 200 once it has synced its rules) and the wall-clock time of its last sync."""
    proc = netns_python(name, _SYNC_PROBE)
    if proc.returncode:
        raise RuntimeError(f"kube-proxy healthz/metrics: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout)


def wait_plane(name: str, state: Path = STATE) -> dict[str, float]:
    """Wait until kube-proxy has synced and the pod-IP server has served the pod list once; the figures."""
    found: dict = {}

    def synced() -> bool:
        found.update(kube_proxy_sync(name))
        return "last_sync" in found

    wait_until("kube-proxy's first sync (healthz in the namespace)", synced, 60, 0.1)
    wait_until("the pod-IP server's first pod list", (state / "podipd.ready").exists, 60, 0.1)
    started = (state / "pids" / "kube-proxy.pid").stat().st_mtime  # written as the process started
    first_sync = found["last_sync"] - started
    log(f"network plane up: namespace {name}; kube-proxy synced {first_sync:.2f} s after it started")
    return {"kube_proxy_first_sync_s": round(first_sync, 2)}


def programmed_endpoints(name: str, namespace: str, service: str) -> set[str]:
    """The `<pod IP>:<port>` backends kube-proxy has programmed for a Service (every port), read from its
    nftables table inside the namespace: the chain `service-<hash>-<namespace>/<service>/<proto>/<port name>`
    jumps to one `endpoint-…__<IP>/<port>` chain per backend."""
    proc = subprocess.run(in_netns(name, [_tool("nft") or "nft", "list", "table", "ip", "kube-proxy"]),
                          capture_output=True, text=True, timeout=10)
    if proc.returncode:
        raise RuntimeError(f"nft list table ip kube-proxy in {name}: {proc.stderr.strip()}")
    chain = re.compile(rf"chain service-[A-Z0-9]+-{re.escape(namespace)}/{re.escape(service)}/")
    out, inside = set(), False
    for line in proc.stdout.splitlines():
        text = line.strip()
        if text.startswith("chain "):
            inside = bool(chain.match(text))
        elif inside:
            out.update(f"{ip}:{port}" for ip, port in _BACKEND.findall(text))
    return out


def netns_http_status(name: str, host: str, port: int, path: str = "/health", timeout: float = 3) -> int:
    """The HTTP status of one GET from inside the namespace (0: no answer)."""
    code = (f"import urllib.request\ntry:\n print(urllib.request.urlopen('http://{host}:{port}{path}', "
            f"timeout={timeout}).status)\nexcept Exception as e:\n print(getattr(e, 'code', 0))")
    proc = netns_python(name, code, timeout + 10)
    return int(proc.stdout.strip() or 0)
