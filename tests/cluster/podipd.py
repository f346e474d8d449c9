"""The pod-IP server: kwok's pods answering on their pod IPs, inside the cluster's network namespace.

Started by the launcher with `ip netns exec <netns>`; it reaches the apiserver through the namespace's bridge
(tests/cluster/bridge.py), so its kubeconfig is the usual one. It watches every pod and, like a kubelet with a
pod sandbox:

- from the moment a pod has a pod IP until the pod object is gone, the IP is on `lo` as a /32 (a connection to
  it then fails fast, refused, while nothing listens);
- while a container is running, a listener on <pod IP>:<port> for each of its declared TCP containerPorts
  (a pod that declares none: ports 80 and 8080, DEFAULT_PORTS); kube-proxy's ClusterIP rules DNAT to these;
- a terminating pod (deletionTimestamp set) keeps what it listens on until its object is deleted (its grace
  period); then its connections are closed, its listeners go, and its IP leaves `lo`;
- readiness, like a kubelet whose readiness probe passes once the app answers: kwok starts a healthy pod's
  containers without marking it Ready (`pod-start` in kwok-stages.yaml), and this server sets Ready once every port
  of the pod listens. So an endpoint is never published (and kube-proxy never routes to it) before its listener
  exists, however far this server lags behind a burst of new pods. Pods whose fault marker says they never, or
  only later, become ready (fault-neverready, fault-slowready-N) are left to kwok's stages.

The answers come from the handler shared with the port-forward app plane (tests/cluster/podapp.py).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import queue
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client, config, watch

from tests.cluster.podapp import PodApp, pod_apps, serve_http

log = logging.getLogger("podipd")
DEFAULT_PORTS = (80, 8080)  # for a pod that declares no containerPort (the port-forward plane serves any port)
KWOK_READINESS = re.compile(r"fault-(neverready|slowready-[0-9]+)")  # kwok's stages decide when these are ready


@dataclass(frozen=True)
class PodView:
    """What decides a pod's listeners: observed from the pod object, nothing else."""

    key: str  # namespace/name/uid
    ip: str
    terminating: bool
    apps: dict[int, PodApp]  # listen port -> what it serves
    ready_due: bool = False  # every container runs, the pod is not Ready yet, and its readiness is ours to set

    def running_ports(self) -> frozenset[int]:
        return frozenset(port for port, app in self.apps.items() if app.running)


def readiness_due(pod) -> bool:
    """A pod whose containers all run, not Ready yet, not terminating, and whose images carry no marker that
    leaves readiness to kwok."""
    status = pod.status
    if pod.metadata.deletion_timestamp is not None or not status or status.phase != "Running":
        return False
    if any(KWOK_READINESS.search(c.image or "") for c in pod.spec.containers):
        return False
    if any(c.type == "Ready" and c.status == "True" for c in status.conditions or []):
        return False
    running = {cs.name for cs in status.container_statuses or [] if cs.state and cs.state.running}
    return all(c.name in running for c in pod.spec.containers)


def ready_patch(pod, api_client: client.ApiClient, now: str) -> dict:
    """The status a kubelet writes when the readiness probe passes: Ready and ContainersReady True, every
    container ready (containerStatuses is an atomic list: sent whole)."""
    statuses = api_client.sanitize_for_serialization(pod.status.container_statuses or [])
    for cs in statuses:
        cs["ready"] = True
    return {"status": {"conditions": [{"type": t, "status": "True", "lastProbeTime": None,
                                       "lastTransitionTime": now, "reason": None, "message": None}
                                      for t in ("ContainersReady", "Ready")],
                       "containerStatuses": statuses}}


def view_of(pod, pod_cidr: ipaddress.IPv4Network) -> PodView:
    """A pod's view; its IP counts only inside the pod CIDR (a hostNetwork pod's IP is the node's, 127.0.0.1)."""
    apps = pod_apps(pod)
    if 0 in apps:
        apps = {port: apps[0] for port in DEFAULT_PORTS}
    ip = (pod.status.pod_ip if pod.status else None) or ""
    if ip and ipaddress.ip_address(ip) not in pod_cidr:
        ip = ""
    return PodView(f"{pod.metadata.namespace}/{pod.metadata.name}/{pod.metadata.uid}", ip,
                   pod.metadata.deletion_timestamp is not None, apps, readiness_due(pod))


def wanted_ports(view: PodView, listening: frozenset[int]) -> frozenset[int]:
    """The ports that should listen: the running containers' ports; a terminating pod keeps what listens."""
    if not view.ip:
        return frozenset()
    return listening if view.terminating else view.running_ports()


@dataclass
class Served:
    ip: str
    apps: dict[int, PodApp]
    servers: dict[int, asyncio.AbstractServer] = field(default_factory=dict)
    conns: set[asyncio.StreamWriter] = field(default_factory=set)


def _close_all(conns: set[asyncio.StreamWriter]) -> None:
    """On the loop (which also adds to `conns`): close every open connection."""
    for writer in list(conns):
        writer.close()


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


class PodIPServer:
    """Owns the pod IPs on lo and the listeners. All state changes happen under `lock` (watch and retry threads);
    sockets are opened and closed on the asyncio loop."""

    def __init__(self, api_client: client.ApiClient, loop: asyncio.AbstractEventLoop, pod_cidr: str):
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.loop = loop
        self.pod_cidr = ipaddress.IPv4Network(pod_cidr)
        self.lock = threading.Lock()
        self.pods: dict[str, PodView] = {}
        self.served: dict[str, Served] = {}
        self.owners: dict[str, set[str]] = {}  # pod IP -> keys of the pods that hold it
        self.objects: dict[str, object] = {}  # key -> the last pod object seen, while its readiness is due
        self.readiness: queue.Queue[str] = queue.Queue()  # keys whose every port listens: to be marked Ready
        self.queued: set[str] = set()

    # -- addresses
    def _hold_ip(self, ip: str, key: str) -> None:
        holders = self.owners.setdefault(ip, set())
        if not holders:
            res = _ip("addr", "add", f"{ip}/32", "dev", "lo")
            if res.returncode and "File exists" not in res.stderr:
                log.warning("ip addr add %s: %s", ip, res.stderr.strip())
        holders.add(key)

    def _release_ip(self, ip: str, key: str) -> None:
        holders = self.owners.get(ip, set())
        holders.discard(key)
        if not holders:
            self.owners.pop(ip, None)
            _ip("addr", "del", f"{ip}/32", "dev", "lo")

    # -- listeners
    async def _listen(self, served: Served, port: int) -> asyncio.AbstractServer:
        app = served.apps[port]

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            served.conns.add(writer)
            try:
                await serve_http(app, reader, writer)
            finally:
                served.conns.discard(writer)

        return await asyncio.start_server(handle, served.ip, port)

    def _open(self, key: str, served: Served, port: int) -> None:
        try:
            served.servers[port] = asyncio.run_coroutine_threadsafe(self._listen(served, port), self.loop).result(10)
            log.info("%s: listening on %s:%d", key, served.ip, port)
        except OSError as exc:  # e.g. the IP still held by a terminating pod's listener: retried
            log.warning("%s: cannot listen on %s:%d (%s); retrying", key, served.ip, port, exc)

    def _close(self, served: Served, ports: frozenset[int] | None = None) -> None:
        """Stop listening on `ports` (all when None); with all ports, close the open connections too (the
        container's process is gone)."""
        for port in list(served.servers if ports is None else ports):
            if server := served.servers.pop(port, None):
                self.loop.call_soon_threadsafe(server.close)
        if ports is None or not served.servers:
            self.loop.call_soon_threadsafe(_close_all, served.conns)

    # -- reconcile
    def apply(self, view: PodView, pod=None) -> None:
        """Bring one pod's IP and listeners to what `view` asks for; once they all listen, mark it Ready."""
        with self.lock:
            served = self.served.get(view.key)
            if served and served.ip != view.ip:  # never seen, but a changed IP must not leave the old one behind
                self.forget(view.key)
                served = None
            self.pods[view.key] = view
            if pod is not None and view.ready_due:
                self.objects[view.key] = pod
            if not view.ip:  # a hostNetwork pod (or one without an IP yet): nothing to listen on
                self._mark_ready_when_listening(view, frozenset())
                return
            if served is None:
                served = self.served[view.key] = Served(view.ip, dict(view.apps))
                self._hold_ip(view.ip, view.key)
            for port, app in view.apps.items():
                if port in served.apps and not view.terminating:
                    served.apps[port].refresh(app)
                elif port in served.apps:
                    served.apps[port].draining = True
            want = wanted_ports(view, frozenset(served.servers))
            self._close(served, frozenset(served.servers) - want)
            for port in sorted(want - frozenset(served.servers)):
                self._open(view.key, served, port)
            self._mark_ready_when_listening(view, want - frozenset(served.servers))

    def _mark_ready_when_listening(self, view: PodView, missing: frozenset[int]) -> None:
        """Under the lock: queue the Ready patch once nothing is missing (a pod without an IP yet waits)."""
        if not view.ready_due or missing or view.key in self.queued or view.key not in self.objects:
            return
        if not view.ip and self.objects[view.key].status.pod_ip in ("", None):
            return
        self.queued.add(view.key)
        self.readiness.put(view.key)

    def mark_ready_forever(self) -> None:
        """One thread patches pod status, so the watch never waits on the apiserver. A pod that changed meanwhile
        (no longer due, or gone) is skipped; a failed patch is tried again by the next event or retry pass."""
        while True:
            key = self.readiness.get()
            with self.lock:
                view, pod = self.pods.get(key), self.objects.get(key)
            try:
                if view is not None and view.ready_due and pod is not None:
                    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                    self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace,
                                                          ready_patch(pod, self.api_client, now))
                    log.info("%s: every port listens; marked Ready", key)
                    with self.lock:
                        self.objects.pop(key, None)
            except Exception as exc:  # noqa: BLE001 - e.g. the pod was deleted meanwhile; retried below
                log.warning("%s: marking Ready failed (%s)", key, exc)
                time.sleep(0.5)
            finally:
                with self.lock:
                    self.queued.discard(key)

    def forget(self, key: str) -> None:
        """The pod object is gone: its connections, listeners and IP go."""
        self.pods.pop(key, None)
        self.objects.pop(key, None)
        if served := self.served.pop(key, None):
            self._close(served)
            self._release_ip(served.ip, key)
            log.info("%s: gone; released %s", key, served.ip)

    def on_event(self, kind: str, pod) -> None:
        view = view_of(pod, self.pod_cidr)
        if kind == "DELETED":
            with self.lock:
                self.forget(view.key)
        else:
            self.apply(view, pod)

    def retry_forever(self, interval_s: float = 1.0) -> None:
        """Listeners that could not be opened (an address still in use) are tried again."""
        while True:
            time.sleep(interval_s)
            with self.lock:
                pending = [v for k, v in self.pods.items()
                           if k in self.served and wanted_ports(v, frozenset(self.served[k].servers))
                           - frozenset(self.served[k].servers)]
            for view in pending:
                self.apply(view)
            with self.lock:  # Ready patches that failed are queued again
                for key in list(self.objects):
                    if (view := self.pods.get(key)) is None:
                        continue
                    listening = frozenset(served.servers) if (served := self.served.get(key)) else frozenset()
                    self._mark_ready_when_listening(view, wanted_ports(view, listening) - listening)

    def sync(self, pods: list) -> None:
        """A full list: apply every pod, forget those no longer there (deleted while the watch was down)."""
        seen = set()
        for pod in pods:
            view = view_of(pod, self.pod_cidr)
            seen.add(view.key)
            self.apply(view, pod)
        with self.lock:
            for key in [k for k in self.served if k not in seen]:
                self.forget(key)

    def watch_forever(self, ready_file: Path | None) -> None:
        """List+watch pods in every namespace; re-list after 410 Gone or a dropped connection. Started with the
        apiserver, so until the first list succeeds it retries every 0.2 s, quietly."""
        synced = False
        while True:
            try:
                pods = self.core.list_pod_for_all_namespaces(_request_timeout=30)
                self.sync(pods.items)
                synced = True
                if ready_file:
                    ready_file.write_text(f"{time.time()}\n")
                w = watch.Watch()
                for event in w.stream(self.core.list_pod_for_all_namespaces,
                                      resource_version=pods.metadata.resource_version,
                                      timeout_seconds=300, _request_timeout=330):
                    self.on_event(event["type"], event["object"])
            except Exception as exc:  # noqa: BLE001 - the daemon must outlive apiserver restarts
                if not synced:
                    time.sleep(0.2)
                    continue
                log.warning("watch interrupted (%s); re-listing in 1 s", exc)
                time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description="greenlight test cluster: pods answering on their pod IPs")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--pod-cidr", required=True, help="only IPs in it go on lo")
    parser.add_argument("--ready-file", type=Path, help="written after each full sync of the pod list")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    loop = asyncio.new_event_loop()
    server = PodIPServer(config.new_client_from_config(config_file=args.kubeconfig), loop, args.pod_cidr)
    threading.Thread(target=server.watch_forever, args=(args.ready_file,), name="pod-watch", daemon=True).start()
    threading.Thread(target=server.retry_forever, name="retry", daemon=True).start()
    threading.Thread(target=server.mark_ready_forever, name="readiness", daemon=True).start()
    log.info("pod-IP server running")
    loop.run_forever()


if __name__ == "__main__":
    main()
