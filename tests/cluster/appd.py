"""The app plane of the local test cluster: what runs "inside" kwok's pods.

kwok pods run nothing, so smoke tests through port-forward would have nowhere to land. This daemon watches every
pod; for each declared containerPort it opens a listener on 127.0.0.1 and creates a kwok `PortForward` object
(namespaced, named after the pod, owned by it so garbage collection removes it) that points the pod's port at
that listener. A request through `kubectl port-forward` or `kubernetes.stream.portforward` thus travels
client -> kube-apiserver -> kwok (the kubelet's streaming API) -> this listener, which answers as the pod's image.

Behaviour by image reference (documented in tests/README.md):
  any image             GET /health -> 200 "ok"; GET / -> a page naming the pod, its image and plain env values
  fault-unhealthy       every path -> 500
  fault-failafter-N     healthy for N seconds after the pod was created, then every path -> 500
  fault-latency-N       every answer delayed by N milliseconds
"""

from __future__ import annotations

import argparse
import asyncio
import html
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

log = logging.getLogger("appd")
KWOK_GROUP, KWOK_VERSION = "kwok.x-k8s.io", "v1alpha1"


@dataclass
class PodApp:
    """What one pod serves. Mutable: the watch refreshes pod IP and env as the pod changes."""

    namespace: str
    name: str
    uid: str
    image: str
    created: float
    pod_ip: str = ""
    env: dict[str, str] = field(default_factory=dict)
    running: bool = False  # like a kubelet, nothing answers while the container is not running

    def _marker(self, name: str) -> int | None:
        m = re.search(rf"fault-{name}-([0-9]+)", self.image)
        return int(m.group(1)) if m else None

    def latency_s(self) -> float:
        return (self._marker("latency") or 0) / 1000.0

    def healthy(self, now: float) -> bool:
        if "fault-unhealthy" in self.image:
            return False
        fail_after = self._marker("failafter")
        return fail_after is None or now - self.created < fail_after

    def respond(self, path: str, now: float) -> tuple[int, str, str]:
        """(status, content type, body) for a GET of `path`."""
        if not self.healthy(now):
            return 500, "text/plain", f"unhealthy: {self.name} ({self.image})\n"
        route = path.split("?", 1)[0]
        if route in ("/health", "/healthz", "/ready", "/readyz"):
            return 200, "text/plain", "ok\n"
        if route in ("/", "/index.html"):
            return 200, "text/html; charset=utf-8", self.page()
        return 404, "text/plain", f"not found: {route}\n"

    def page(self) -> str:
        color = html.escape(self.env.get("IMAGE_COLOR", "white"))
        rows = "\n".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in sorted(self.env.items()))
        return (
            f"<html><head><title>{html.escape(self.name)}</title></head>"
            f'<body style="background-color: {color}">\n'
            f"<h1>Pod: {html.escape(self.name)}</h1>\n<p>Namespace: {html.escape(self.namespace)}</p>\n"
            f"<p>Image: {html.escape(self.image)}</p>\n<p>POD IP: {html.escape(self.pod_ip)}</p>\n"
            f"<p>IMAGE_COLOR: {color}</p>\n<ul>\n{rows}\n</ul>\n</body></html>\n"
        )


def _running(pod, container: str) -> bool:
    statuses = (pod.status.container_statuses or []) if pod.status else []
    return pod.status.phase == "Running" and any(
        cs.name == container and cs.state and cs.state.running for cs in statuses)


def _pod_apps(pod) -> dict[int, PodApp]:
    """One PodApp per declared container port (port 0 = 'all ports', for pods that declare none)."""
    created = pod.metadata.creation_timestamp or datetime.now(timezone.utc)
    apps: dict[int, PodApp] = {}
    for c in pod.spec.containers:
        env = {e.name: e.value for e in (c.env or []) if e.value is not None and e.value_from is None}
        for p in c.ports or []:
            if (p.protocol or "TCP") == "TCP":
                apps[p.container_port] = PodApp(pod.metadata.namespace, pod.metadata.name, pod.metadata.uid,
                                                c.image, created.timestamp(), pod.status.pod_ip or "", env,
                                                _running(pod, c.name))
    if not apps:
        c = pod.spec.containers[0]
        env = {e.name: e.value for e in (c.env or []) if e.value is not None and e.value_from is None}
        apps[0] = PodApp(pod.metadata.namespace, pod.metadata.name, pod.metadata.uid, c.image,
                         created.timestamp(), pod.status.pod_ip or "", env, _running(pod, c.name))
    return apps


async def _serve_http(app: PodApp, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A small HTTP/1.1 server: GET/HEAD with keep-alive; anything else gets 405."""
    if not app.running:
        writer.close()
        return
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = (lines[0].split(" ") + ["", ""])[:3]
            headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
            if int(headers.get("content-length", "0") or 0):
                await reader.readexactly(int(headers["content-length"]))
            if app.latency_s():
                await asyncio.sleep(app.latency_s())
            if method in ("GET", "HEAD"):
                status, ctype, body = app.respond(path, time.time())
            else:
                status, ctype, body = 405, "text/plain", "method not allowed\n"
            data = body.encode()
            close = headers.get("connection", "").lower() == "close"
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
                f"X-Pod-Name: {app.name}\r\nConnection: {'close' if close else 'keep-alive'}\r\n\r\n".encode()
                + (data if method != "HEAD" else b""))
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


class AppPlane:
    def __init__(self, api_client: client.ApiClient, loop: asyncio.AbstractEventLoop):
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.loop = loop
        self.servers: dict[str, dict[int, tuple[asyncio.AbstractServer, PodApp]]] = {}

    async def _listen(self, app: PodApp) -> tuple[asyncio.AbstractServer, int]:
        server = await asyncio.start_server(lambda r, w: _serve_http(app, r, w), "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]

    def on_pod(self, kind: str, pod) -> None:
        key = f"{pod.metadata.namespace}/{pod.metadata.name}/{pod.metadata.uid}"
        if kind == "DELETED":
            for server, _ in self.servers.pop(key, {}).values():
                self.loop.call_soon_threadsafe(server.close)
            return
        apps = _pod_apps(pod)
        if key in self.servers:
            for port, (_, app) in self.servers[key].items():  # refresh what the page shows
                if port in apps:
                    app.pod_ip, app.env, app.running = apps[port].pod_ip, apps[port].env, apps[port].running
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
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    loop = asyncio.new_event_loop()
    plane = AppPlane(config.new_client_from_config(config_file=args.kubeconfig), loop)
    threading.Thread(target=plane.watch_forever, name="pod-watch", daemon=True).start()
    log.info("app plane running")
    loop.run_forever()


if __name__ == "__main__":
    main()
