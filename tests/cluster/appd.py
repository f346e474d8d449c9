"""The app plane of the local test cluster: what runs "inside" kwok's pods.

kwok pods run nothing, so smoke tests through port-forward would have nowhere to land. This daemon watches every
pod; for each declared containerPort it opens a listener on 127.0.0.1 and creates a kwok `PortForward` object
(namespaced, named after the pod, owned by it so garbage collection removes it) that points the pod's port at
that listener. A request through `kubectl port-forward` or `kubernetes.stream.portforward` thus travels
client -> kube-apiserver -> kwok (the kubelet's streaming API) -> this listener, which answers as the pod's image.

What a pod answers (by image reference, fault markers included) is tests/cluster/podapp.py, shared with the
pod-IP data path (tests/cluster/podipd.py).

Pods that run to completion (restartPolicy Never or OnFailure: a Job's) also get a log, as `kubectl logs` and
the pods/log API read it: a file in the CRI log format written when the pod is first seen (the command the pod
would run, and how its fault marker makes it exit), and a kwok `Logs` object (named after the pod, owned by it)
pointing kwok's kubelet API at that file.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.cluster.podapp import PodApp, pod_apps, serve_http

log = logging.getLogger("appd")
KWOK_GROUP, KWOK_VERSION = "kwok.x-k8s.io", "v1alpha1"


EXIT_MARKER = re.compile(r"fault-exit([01])-([0-9]+)")


def log_lines(pod) -> list[str]:
    """What a run-to-completion pod's container "prints": its image, its command line, how it ends."""
    c = pod.spec.containers[0]
    lines = [f"greenlight test cluster (kwok): pod {pod.metadata.name} runs {c.image}"]
    words = [*(c.command or []), *(c.args or [])]
    if words:
        lines.append("$ " + " ".join(words))
    exit_marker = EXIT_MARKER.search(c.image or "")
    if exit_marker:
        code, after = exit_marker.groups()
        lines.append(f"{'done' if code == '0' else 'error'}: exit code {code} after {after} s")
    return lines


def cri_log(lines: list[str], now: datetime) -> str:
    """Lines in the CRI log format kwok's kubelet API reads (k8s.io/cri-client/pkg/logs)."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    return "".join(f"{stamp} stdout F {line}\n" for line in lines)


class AppPlane:
    def __init__(self, api_client: client.ApiClient, loop: asyncio.AbstractEventLoop, log_dir: Path | None = None):
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.loop = loop
        self.log_dir = log_dir
        self.servers: dict[str, dict[int, tuple[asyncio.AbstractServer, PodApp]]] = {}
        self.logged: set[str] = set()

    async def _listen(self, app: PodApp) -> tuple[asyncio.AbstractServer, int]:
        server = await asyncio.start_server(lambda r, w: serve_http(app, r, w), "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]

    def on_pod(self, kind: str, pod) -> None:
        key = f"{pod.metadata.namespace}/{pod.metadata.name}/{pod.metadata.uid}"
        if kind == "DELETED":
            for server, _ in self.servers.pop(key, {}).values():
                self.loop.call_soon_threadsafe(server.close)
            if key in self.logged:
                self.logged.discard(key)
                self._log_file(pod).unlink(missing_ok=True)
            return
        if self.log_dir is not None and key not in self.logged and pod.spec.restart_policy in ("Never", "OnFailure"):
            try:  # a pod whose Logs object could not be made (an apiserver outage) is retried next event
                self._ensure_logs(pod)
                self.logged.add(key)
            except Exception as exc:  # noqa: BLE001
                log.warning("pod %s: no Logs object yet (%s)", pod.metadata.name, exc)
        apps = pod_apps(pod)
        if key in self.servers:
            for port, (_, app) in self.servers[key].items():  # refresh what the page shows
                if port in apps:
                    app.refresh(apps[port])
            return
        listeners: dict[int, tuple[asyncio.AbstractServer, PodApp]] = {}
        forwards = []
        for port, app in apps.items():
            server, local = asyncio.run_coroutine_threadsafe(self._listen(app), self.loop).result()
            listeners[port] = (server, app)
            fwd = {"target": {"address": "127.0.0.1", "port": local}}
            if port:
                fwd["ports"] = [port]
            forwards.append(fwd)
        try:  # a pod without its PortForward (creation failed in an apiserver outage) is retried next event
            self._ensure_port_forward(pod, forwards)
        except Exception:
            for server, _ in listeners.values():
                self.loop.call_soon_threadsafe(server.close)
            raise
        self.servers[key] = listeners

    def _ensure_port_forward(self, pod, forwards: list[dict]) -> None:
        body = {
            "apiVersion": f"{KWOK_GROUP}/{KWOK_VERSION}", "kind": "PortForward",
            "metadata": {"name": pod.metadata.name, "namespace": pod.metadata.namespace,
                         "labels": {"app.kubernetes.io/managed-by": "greenlight-test-appd"},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name,
                                              "uid": pod.metadata.uid}]},
            "spec": {"forwards": forwards},
        }
        ns, name = pod.metadata.namespace, pod.metadata.name
        try:
            self.custom.create_namespaced_custom_object(KWOK_GROUP, KWOK_VERSION, ns, "portforwards", body)
        except ApiException as exc:
            if exc.status == 409:  # a pod of the same name was recreated: point the object at the new listeners
                self.custom.patch_namespaced_custom_object(KWOK_GROUP, KWOK_VERSION, ns, "portforwards", name, body)
            elif exc.status == 404:
                log.info("namespace %s is gone; skipping %s", ns, name)
            else:
                raise

    def _log_file(self, pod) -> Path:
        assert self.log_dir is not None
        return self.log_dir / f"{pod.metadata.namespace}_{pod.metadata.name}_{pod.metadata.uid}.log"

    def _ensure_logs(self, pod) -> None:
        path = self._log_file(pod)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(cri_log(log_lines(pod), datetime.now(UTC)))
        body = {
            "apiVersion": f"{KWOK_GROUP}/{KWOK_VERSION}", "kind": "Logs",
            "metadata": {"name": pod.metadata.name, "namespace": pod.metadata.namespace,
                         "labels": {"app.kubernetes.io/managed-by": "greenlight-test-appd"},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name,
                                              "uid": pod.metadata.uid}]},
            "spec": {"logs": [{"logsFile": str(path), "follow": False}]},
        }
        ns, name = pod.metadata.namespace, pod.metadata.name
        try:
            self.custom.create_namespaced_custom_object(KWOK_GROUP, KWOK_VERSION, ns, "logs", body)
        except ApiException as exc:
            if exc.status == 409:
                self.custom.patch_namespaced_custom_object(KWOK_GROUP, KWOK_VERSION, ns, "logs", name, body)
            elif exc.status != 404:
                raise

    def watch_forever(self) -> None:
        """List+watch pods in every namespace; re-list after 410 Gone or a dropped connection."""
        while True:
            try:
                pods = self.core.list_pod_for_all_namespaces(_request_timeout=30)
                seen = set()
                for pod in pods.items:
                    seen.add(f"{pod.metadata.namespace}/{pod.metadata.name}/{pod.metadata.uid}")
                    self.on_pod("ADDED", pod)
                for key in list(self.servers):
                    if key not in seen:
                        for server, _ in self.servers.pop(key).values():
                            self.loop.call_soon_threadsafe(server.close)
                rv = pods.metadata.resource_version
                w = watch.Watch()
                for event in w.stream(self.core.list_pod_for_all_namespaces, resource_version=rv,
                                      timeout_seconds=300, _request_timeout=330):
                    try:
                        self.on_pod(event["type"], event["object"])
                    except ApiException as exc:
                        log.warning("pod %s: %s", event["object"].metadata.name, exc.reason)
            except Exception as exc:  # noqa: BLE001 - the daemon must outlive apiserver restarts
                log.warning("watch interrupted (%s); re-listing in 1 s", exc)
                time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description="greenlight test cluster app plane")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--pod-logs", type=Path, help="directory for the logs of run-to-completion pods")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    loop = asyncio.new_event_loop()
    plane = AppPlane(config.new_client_from_config(config_file=args.kubeconfig), loop, args.pod_logs)
    threading.Thread(target=plane.watch_forever, name="pod-watch", daemon=True).start()
    log.info("app plane running")
    loop.run_forever()


if __name__ == "__main__":
    main()
