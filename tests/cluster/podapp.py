"""What a kwok pod "runs": one HTTP handler shared by both app-plane data paths of the local test cluster.

- port-forward (tests/cluster/appd.py): a listener on 127.0.0.1 per pod port, reached through kwok's PortForward;
- pod IP (tests/cluster/podipd.py, inside the cluster's network namespace): a listener on <pod IP>:<port>, reached
  directly or through a Service ClusterIP programmed by kube-proxy.

Both build their PodApps with `pod_apps` and answer with `serve_http`, so a pod answers the same on either path.

Behaviour by image reference (documented in tests/README.md):
  any image             GET /health -> 200 "ok"; GET / -> a page naming the pod, its image and plain env values
  fault-unhealthy       every path -> 500
  fault-failafter-N     healthy for N seconds after the pod was created, then every path -> 500
  fault-latency-N       every answer delayed by N milliseconds
  fault-latency-M-J     every answer delayed by a fresh draw, uniform over M +- J milliseconds (a distribution:
                        the canary judge's tests compare two of them)
Every answer carries `X-Pod-Name: <pod>` and `X-Pod-Image: <image>`.
"""

from __future__ import annotations

import asyncio
import html
import random
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}


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
    draining: bool = False  # the pod is terminating: answer, but close each keep-alive connection after it

    def _marker(self, name: str) -> int | None:
        m = re.search(rf"fault-{name}-([0-9]+)", self.image)
        return int(m.group(1)) if m else None

    def latency_s(self) -> float:
        m = re.search(r"fault-latency-([0-9]+)-([0-9]+)", self.image)
        if m:
            mean, jitter = int(m.group(1)), int(m.group(2))
            return max(0.0, random.uniform(mean - jitter, mean + jitter)) / 1000.0
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

    def refresh(self, other: "PodApp") -> None:
        """Take what can change on a live pod (IP, env, whether the container runs) from a newer view."""
        self.pod_ip, self.env, self.running = other.pod_ip, other.env, other.running


def container_running(pod, container: str) -> bool:
    statuses = (pod.status.container_statuses or []) if pod.status else []
    return pod.status.phase == "Running" and any(
        cs.name == container and cs.state and cs.state.running for cs in statuses)


def _plain_env(c) -> dict[str, str]:
    return {e.name: e.value for e in (c.env or []) if e.value is not None and e.value_from is None}


def pod_apps(pod) -> dict[int, PodApp]:
    """One PodApp per declared TCP container port (port 0 = 'all ports', for pods that declare none)."""
    created = (pod.metadata.creation_timestamp or datetime.now(timezone.utc)).timestamp()
    meta, ip = pod.metadata, (pod.status.pod_ip if pod.status else None) or ""
    apps: dict[int, PodApp] = {}
    for c in pod.spec.containers:
        for p in c.ports or []:
            if (p.protocol or "TCP") == "TCP":
                apps[p.container_port] = PodApp(meta.namespace, meta.name, meta.uid, c.image, created, ip,
                                                _plain_env(c), container_running(pod, c.name))
    if not apps:
        c = pod.spec.containers[0]
        apps[0] = PodApp(meta.namespace, meta.name, meta.uid, c.image, created, ip, _plain_env(c),
                         container_running(pod, c.name))
    return apps


def _head_bytes(app: PodApp, status: int, ctype: str, length: int, close: bool) -> bytes:
    return (f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: {ctype}\r\nContent-Length: {length}\r\n"
            f"X-Pod-Name: {app.name}\r\nX-Pod-Image: {app.image}\r\n"
            f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n").encode("latin-1", "replace")


def keeps_alive(version: str, connection: str) -> bool:
    """RFC 9112 9.3: HTTP/1.1 is persistent unless the client says `close`; HTTP/1.0 closes after the answer unless
    the client asked for keep-alive (a 1.0 client reading to EOF would otherwise hang until its timeout)."""
    tokens = {t.strip().lower() for t in connection.split(",")}
    if version.upper() == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


async def serve_http(app: PodApp, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A small HTTP/1.1 server: GET/HEAD, persistent as RFC 9112 says (`keeps_alive`); anything else gets 405. A connection to a pod whose
    container is not running is closed at once."""
    if not app.running:
        writer.close()
        return
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, version = (lines[0].split(" ") + ["", ""])[:3]
            fields = (line.split(":", 1) for line in lines[1:] if ":" in line)
            headers = {k.strip().lower(): v.strip() for k, v in fields}
            if int(headers.get("content-length", "0") or 0):
                await reader.readexactly(int(headers["content-length"]))
            delay = app.latency_s()
            if delay:
                await asyncio.sleep(delay)
            if method in ("GET", "HEAD"):
                status, ctype, body = app.respond(path, time.time())
            else:
                status, ctype, body = 405, "text/plain", "method not allowed\n"
            data = body.encode()
            # A terminating pod drains like an app with a graceful shutdown: it still answers, and tells each
            # keep-alive client to go elsewhere for the next request.
            close = not keeps_alive(version, headers.get("connection", "")) or app.draining
            writer.write(_head_bytes(app, status, ctype, len(data), close) + (data if method != "HEAD" else b""))
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()
