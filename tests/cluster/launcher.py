"""Start and stop greenlight's local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok (the kubelet) and the app plane (tests/cluster/appd.py), all as local processes on 127.0.0.1;
and its network plane (tests/cluster/netplane.py): kube-proxy and the pod-IP server in a network namespace.

    python -m tests.cluster.launcher up      # idempotent: a no-op when the cluster is already up
    python -m tests.cluster.launcher down    # stops every process it started, by PID, and removes the state
    python -m tests.cluster.launcher status
    python -m tests.cluster.launcher restart-apiserver --down 3   # same port, flags, certs and etcd

Binaries come from hack/cluster/build.sh (cached under .cache/bin/<component>-<version>). Nothing here knows
about greenlight itself: the release code only ever sees the kubeconfig written to <state>/kubeconfig.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.cluster import gateway, netplane
from tests.cluster.pki import CLIENT_CERTS, make_pki, write_kubeconfig  # noqa: F401 - re-exported
from tests.cluster.procs import (  # noqa: F401 - re-exported: tests and bench import them from here
    CACHE,
    HACK,
    NODE_NAME,
    POD_CIDR,
    ROOT,
    SERVICE_CIDR,
    STATE,
    _http_ok,
    _https_ok,
    alive,
    free_port,
    log,
    ours,
    pids,
    start,
    wait_until,
)


def versions() -> dict[str, str]:
    out = {}
    for line in (HACK / "versions.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    apiserver: Path
    controller_manager: Path
    scheduler: Path
    kubectl: Path
    kwok: Path
    kube_proxy: Path
    kwok_logs_crd: Path  # Job pods' logs (tests/cluster/appd.py writes them); build.sh adds it to an older cache
    traefik: Path  # the gateway (tests/cluster/gateway.py); the Gateway API CRDs beside it in crds/

    @classmethod
    def from_cache(cls) -> "Binaries":
        v = versions()
        k8s = CACHE / "bin" / f"kubernetes-{v['K8S_VERSION']}"
        return cls(
            etcd=CACHE / "bin" / f"etcd-{v['ETCD_VERSION']}" / "etcd",
            apiserver=k8s / "kube-apiserver",
            controller_manager=k8s / "kube-controller-manager",
            scheduler=k8s / "kube-scheduler",
            kubectl=k8s / "kubectl",
            kwok=CACHE / "bin" / f"kwok-{v['KWOK_VERSION']}" / "kwok",
            kube_proxy=CACHE / "bin" / f"kube-proxy-{v['K8S_VERSION']}" / "kube-proxy",
            kwok_logs_crd=CACHE / "bin" / f"kwok-{v['KWOK_VERSION']}" / "crds" / "kwok.x-k8s.io_logs.yaml",
            traefik=gateway.traefik_dir(v) / "traefik",
        )

    def missing(self) -> list[Path]:
        return [p for p in vars(self).values() if not p.exists()]


def apiserver_argv(bins: "Binaries", pki: Path, ports: dict[str, int]) -> list[str]:
    """The kube-apiserver command line: one function for `up` and `restart_apiserver`, so a restarted apiserver
    has exactly the flags, certificates, etcd and port it had (kubeconfigs stay valid)."""
    return [
        str(bins.apiserver), f"--etcd-servers=http://127.0.0.1:{ports['etcd_client']}", "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1", f"--secure-port={ports['apiserver']}",
        f"--tls-cert-file={pki / 'serving.crt'}", f"--tls-private-key-file={pki / 'serving.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--kubelet-client-certificate={pki / 'admin.crt'}", f"--kubelet-client-key={pki / 'admin.key'}",
        f"--service-account-key-file={pki / 'sa.pub'}", f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={SERVICE_CIDR}", "--authorization-mode=Node,RBAC",
        "--allow-privileged=true", "--enable-priority-and-fairness=false", "--profiling=false",
        f"--audit-policy-file={HACK / 'audit-policy.yaml'}", f"--audit-log-path={STATE / 'logs' / 'audit.log'}",
        "--audit-log-maxsize=200", "--audit-log-maxbackup=1",
    ]


# ------------------------------------------------------------------------------------------------ up/down
def status() -> dict:
    state_file = STATE / "cluster.json"
    if not state_file.exists():
        return {"up": False}
    info = json.loads(state_file.read_text())
    procs = {name: alive(pid) and ours(pid) for name, pid in pids().items()}
    info["processes"] = procs
    info["netns_present"] = netplane.netns_exists(info.get("netns", netplane.netns_name()))
    info["up"] = bool(procs) and all(procs.values()) and info["netns_present"]
    return info


def _already_up() -> dict | None:
    current = status()
    if current["up"]:
        try:
            if _https_ok(f"{current['server']}/readyz", STATE / "pki"):
                return current
        except OSError:
            pass
    if current.get("processes") or STATE.exists() or netplane.netns_exists(netplane.netns_name()):
        log("stale cluster state found: cleaning it up first")
        down()
    return None


def _prepare() -> tuple[Path, dict[str, int], str]:
    """State dirs, PKI, ports and one kubeconfig per component; (pki dir, ports, server URL)."""
    for sub in ("pids", "logs", "etcd"):
        (STATE / sub).mkdir(parents=True, exist_ok=True)
    pki = STATE / "pki"
    make_pki(pki)
    ports = {k: free_port() for k in ("etcd_client", "etcd_peer", "apiserver", "kwok")}
    server = f"https://127.0.0.1:{ports['apiserver']}"
    write_kubeconfig(STATE / "kubeconfig", pki, server)
    for user in CLIENT_CERTS:
        if user != "admin":
            write_kubeconfig(STATE / f"{user}.kubeconfig", pki, server, user)
    return pki, ports, server


def _start_etcd_and_apiserver(bins: Binaries, pki: Path, ports: dict[str, int], server: str) -> None:
    etcd_url = f"http://127.0.0.1:{ports['etcd_client']}"
    peer_url = f"http://127.0.0.1:{ports['etcd_peer']}"
    start("etcd", [str(bins.etcd), "--name=node0", f"--data-dir={STATE / 'etcd'}",
                   f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
                   f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
                   f"--initial-cluster=node0={peer_url}", "--unsafe-no-fsync", "--log-level=warn",
                   "--auto-compaction-retention=1", "--quota-backend-bytes=4294967296"])
    wait_until("etcd", lambda: _http_ok(f"{etcd_url}/health"), 30)
    start("kube-apiserver", apiserver_argv(bins, pki, ports))
    wait_until("kube-apiserver", lambda: _https_ok(f"{server}/readyz", pki), 90)


def _start_controllers_and_kwok(bins: Binaries, pki: Path, ports: dict[str, int]) -> None:
    common = ["--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0"]
    start("kube-controller-manager", [
        str(bins.controller_manager), *common, f"--kubeconfig={STATE / 'kube-controller-manager.kubeconfig'}",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}", "--use-service-account-credentials=false",
        "--controllers=*,-node-ipam-controller,-node-lifecycle-controller,-persistentvolume-binder-controller,"
        "-persistentvolume-attach-detach-controller,-ttl-controller",
        f"--cluster-cidr={POD_CIDR}", f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--kube-api-qps=500", "--kube-api-burst=1000", "--concurrent-service-endpoint-syncs=10",
        "--endpointslice-updates-batch-period=0s",
    ])
    start("kube-scheduler", [str(bins.scheduler), *common, f"--kubeconfig={STATE / 'kube-scheduler.kubeconfig'}",
                             "--kube-api-qps=500", "--kube-api-burst=1000"])
    apply_crds(STATE / "kubeconfig", bins.kwok.parent / "crds")
    start("kwok", [
        str(bins.kwok), f"--kubeconfig={STATE / 'kwok.kubeconfig'}",
        f"--config={ROOT / 'tests' / 'cluster' / 'kwok-stages.yaml'}",
        "--manage-all-nodes=true", f"--tls-cert-file={pki / 'serving.crt'}",
        f"--tls-private-key-file={pki / 'serving.key'}", "--node-ip=127.0.0.1", f"--node-port={ports['kwok']}",
        f"--server-address=127.0.0.1:{ports['kwok']}", "--node-lease-duration-seconds=40",
        f"--cidr={POD_CIDR}", "--enable-crds=PortForward,ClusterPortForward,Logs",
    ])


def up(build: bool = True) -> dict:
    if current := _already_up():
        log("already up: nothing to do")
        return current
    netplane.preflight()  # before anything starts: a host without root/ip/nft fails here, with what is missing
    bins = Binaries.from_cache()
    if bins.missing() and build:
        subprocess.run(["bash", str(HACK / "build.sh")], check=True)
    if missing := bins.missing():
        raise SystemExit(f"missing binaries: {', '.join(map(str, missing))} (run hack/cluster/build.sh)")

    t0 = time.monotonic()
    try:
        return _up(bins, t0)
    except BaseException:
        log(f"up failed: stopping what it started (logs stay in {STATE / 'logs'})")
        down(keep_state=True)
        raise


def _up(bins: Binaries, t0: float) -> dict:
    netns = netplane.netns_name()
    netplane.create_netns(netns)  # first: a kernel without nftables NAT fails here
    pki, ports, server = _prepare()
    kubeconfig = STATE / "kubeconfig"
    netplane.start_bridge(ports["apiserver"])
    _start_etcd_and_apiserver(bins, pki, ports, server)
    _start_controllers_and_kwok(bins, pki, ports)
    create_node(kubeconfig)
    start("appd", [sys.executable, "-m", "tests.cluster.appd", f"--kubeconfig={STATE / 'appd.kubeconfig'}",
                   f"--pod-logs={STATE / 'pod-logs'}"], env={"PYTHONPATH": str(ROOT)})
    netplane.start_proxy(bins.kube_proxy)
    wait_until("node Ready and default ServiceAccount", lambda: cluster_ready(kubeconfig), 90)
    wait_until("kwok PortForward CRD", lambda: crd_established(kubeconfig, "portforwards.kwok.x-k8s.io"), 60)
    figures = netplane.wait_plane(netns)
    apply_crds(kubeconfig, bins.traefik.parent / "crds")
    for crd in ("gatewayclasses", "gateways", "httproutes", "referencegrants"):
        wait_until(f"Gateway API CRD {crd}", lambda c=crd: crd_established(kubeconfig, f"{c}.gateway.networking.k8s.io"),
                   60)
    figures["gateway_programmed_s"] = gateway.start_gateway(bins.traefik, kubeconfig, server, netns)

    info = {"server": server, "kubeconfig": str(kubeconfig), "kubectl": str(bins.kubectl), "ports": ports,
            "netns": netns, "versions": versions(), "started_in_s": round(time.monotonic() - t0, 1), **figures}
    (STATE / "cluster.json").write_text(json.dumps(info, indent=2))
    log(f"up in {info['started_in_s']} s")
    return status()


def _client(kubeconfig: Path):
    from kubernetes import config

    return config.new_client_from_config(config_file=str(kubeconfig))


def create_node(kubeconfig: Path) -> None:
    """One fake node, labelled like a real Linux node (the first tutorial's nodeSelector wants kubernetes.io/os)."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    def attempt() -> bool:
        api = client.CoreV1Api(_client(kubeconfig))
        try:
            api.create_node({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": NODE_NAME, "annotations": {"kwok.x-k8s.io/node": "fake",
                                                                "node.alpha.kubernetes.io/ttl": "0"},
                             "labels": {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                                        "kubernetes.io/hostname": NODE_NAME, "type": "kwok"}},
                "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
                "status": {"allocatable": {"cpu": "64", "memory": "256Gi", "pods": "500"},
                           "capacity": {"cpu": "64", "memory": "256Gi", "pods": "500"}},
            })
        except ApiException as exc:
            if exc.status != 409:
                raise
        return True

    wait_until("node creation", attempt, 30)


def apply_crds(kubeconfig: Path, crd_dir: Path) -> None:
    """The CRDs in `crd_dir` (copied from upstream modules by build.sh): kwok's PortForward/ClusterPortForward/Logs,
    the Gateway API's standard channel."""
    import yaml
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    api = client.ApiextensionsV1Api(_client(kubeconfig))
    for path in sorted(crd_dir.glob("*.yaml")):
        try:
            api.create_custom_resource_definition(yaml.safe_load(path.read_text()))
        except ApiException as exc:
            if exc.status != 409:
                raise


def cluster_ready(kubeconfig: Path) -> bool:
    from kubernetes import client

    api = client.CoreV1Api(_client(kubeconfig))
    node = api.read_node(NODE_NAME)
    ready = any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))
    if ready and node.spec.taints:
        # The apiserver taints a new node not-ready; the node-lifecycle controller (off here: kwok's heartbeats are
        # not what we test) would lift it once the node is Ready, so we do.
        api.patch_node(NODE_NAME, {"spec": {"taints": None}})
        return False
    return ready and bool(api.list_namespaced_service_account("default").items)


def crd_established(kubeconfig: Path, name: str) -> bool:
    from kubernetes import client

    crd = client.ApiextensionsV1Api(_client(kubeconfig)).read_custom_resource_definition(name)
    return any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))


def _stop(names: list[str], running: dict[str, int], grace_s: float = 15) -> None:
    """SIGTERM these processes of ours, wait up to `grace_s` for all of them, SIGKILL the rest."""
    for name in names:
        if alive(running[name]) and ours(running[name]):
            os.kill(running[name], signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for name in names:
        pid = running[name]
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid) and ours(pid):
            log(f"{name} (pid {pid}) ignored SIGTERM: killing it")
            os.kill(pid, signal.SIGKILL)


def down(keep_state: bool = False) -> None:
    """Stop every process we started (by PID, newest first), delete the network namespace, then remove the state
    directory (unless `keep_state`: a failed `up` keeps its logs; the next `up` removes them)."""
    order = [*netplane.PROCESSES, "appd", "kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver",
             "etcd"]
    running = pids()
    names = [n for n in order if n in running] + [n for n in running if n not in order]
    # etcd last: an apiserver whose etcd is already gone hangs in its graceful shutdown until it is killed
    # (that made every `down` take 15 s)
    _stop([n for n in names if n != "etcd"], running)
    _stop([n for n in names if n == "etcd"], running)
    netns = netplane.netns_name()
    netplane.delete_netns(netns)
    if STATE.exists() and not keep_state:
        shutil.rmtree(STATE)
    log(f"down: stopped {len(names)} processes, deleted network namespace {netns}"
        + ("" if keep_state else f", removed {STATE}"))


# -------------------------------------------------------------------------------------------- restarts
def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _require_up() -> dict:
    info = status()
    if not info["up"]:
        raise SystemExit(f"the cluster in {STATE} is not up")
    return info


def stop_apiserver(grace_s: float = 1.0) -> float:
    """SIGTERM the apiserver, SIGKILL it if it is still there after `grace_s`, and wait until the process is gone
    and its port refuses connections. Returns the seconds it took.

    Why the SIGKILL: on SIGTERM kube-apiserver stops listening at once but keeps serving the connections it has
    (watches included) for 60 s before it exits; a restart must sever them, as a crash or a node reboot does."""
    info = _require_up()
    pid, t0 = pids()["kube-apiserver"], time.monotonic()
    os.kill(pid, signal.SIGTERM)
    while alive(pid) and time.monotonic() - t0 < grace_s:
        time.sleep(0.05)
    if alive(pid) and ours(pid):
        os.kill(pid, signal.SIGKILL)
    wait_until("the old kube-apiserver to exit", lambda: not alive(pid), 10, 0.05)
    wait_until("the apiserver port to close", lambda: not _port_open(info["ports"]["apiserver"]), 10, 0.05)
    took = time.monotonic() - t0
    log(f"kube-apiserver stopped in {took:.1f} s")
    return took


def start_apiserver(timeout_s: float = 90) -> float:
    """Start the apiserver again with the very same command line (port, certificates, etcd) and wait for /readyz.
    Returns the seconds until it was ready."""
    info = json.loads((STATE / "cluster.json").read_text())
    pid = pids().get("kube-apiserver")
    if pid and alive(pid) and ours(pid):
        raise SystemExit(f"kube-apiserver (pid {pid}) is still running")
    t0 = time.monotonic()
    start("kube-apiserver", apiserver_argv(Binaries.from_cache(), STATE / "pki", info["ports"]))
    wait_until("kube-apiserver", lambda: _https_ok(f"{info['server']}/readyz", STATE / "pki"), timeout_s, 0.1)
    took = time.monotonic() - t0
    log(f"kube-apiserver ready again in {took:.1f} s")
    return took


def restart_apiserver(down_s: float = 2.0) -> dict[str, float]:
    """Stop the apiserver, keep it down `down_s` seconds, start it again on the same port with the same flags,
    certificates and etcd, and wait until the whole cluster works again (see probe_workloads). Returns timings."""
    stop_s = stop_apiserver()
    time.sleep(max(0.0, down_s))
    ready_s = start_apiserver()
    from tests.cluster.probe import probe_workloads

    healthy_s = probe_workloads(STATE / "kubeconfig")
    return {"stop_s": round(stop_s, 2), "down_s": down_s, "ready_s": round(ready_s, 2),
            "healthy_s": round(healthy_s, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests.cluster.launcher", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "restart-apiserver"])
    parser.add_argument("--down", type=float, default=2.0, help="restart-apiserver: seconds to stay down")
    args = parser.parse_args(argv)
    if args.command == "up":
        info = up()
        print(f"# kubectl: {info['kubectl']}")
        print(f"export GREENLIGHT_NETNS={info['netns']}")  # ip netns exec $GREENLIGHT_NETNS curl <ClusterIP>
        print(f"export PATH={Path(info['kubectl']).parent}:$PATH")
        print(f"export KUBECONFIG={info['kubeconfig']}")
    elif args.command == "down":
        down()
    elif args.command == "restart-apiserver":
        print(json.dumps(restart_apiserver(args.down)))
    else:
        print(json.dumps(status(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
