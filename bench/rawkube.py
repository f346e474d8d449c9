"""A bare Kubernetes client (requests + the kubeconfig's client certificate) for the floors of P1/P2 and for the
bench's own observers. Deliberately independent of greenlight's code: the floor is what a minimal client can do.

`SliceWatch` keeps a Service's EndpointSlices current from one list + one watch, and answers "are the ready
endpoints exactly pods of <deployment>, at least N of them" by pod name prefix (`<deployment>-<hash>-<id>`;
the tutorials' Deployments do not share prefixes).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import requests
import yaml

from bench.harness import KUBECONFIG, check


class RawKube:
    def __init__(self, kubeconfig: str = KUBECONFIG):
        cfg = yaml.safe_load(Path(kubeconfig).read_text())
        cluster, user = cfg["clusters"][0]["cluster"], cfg["users"][0]["user"]
        self.server = cluster["server"]
        self.session = requests.Session()
        self.session.trust_env = False  # else REQUESTS_CA_BUNDLE overrides `verify`; and no proxies, ever
        self.session.verify = cluster["certificate-authority"]
        if "client-certificate" in user:
            self.session.cert = (user["client-certificate"], user["client-key"])
        else:
            self.session.headers["Authorization"] = f"Bearer {user['token']}"

    def get(self, path: str, **params) -> dict:
        r = self.session.get(self.server + path, params=params, timeout=(5, 30))
        check(r.ok, f"GET {path}: HTTP {r.status_code} {r.text[:200]}")
        return r.json()

    def watch(self, path: str, resource_version: str, **params) -> requests.Response:
        """Returns once the apiserver has answered the watch (headers received): events from then on are seen."""
        r = self.session.get(self.server + path, stream=True, timeout=(5, 120),
                             params={**params, "watch": "1", "resourceVersion": resource_version,
                                     "allowWatchBookmarks": "false", "timeoutSeconds": "110"})
        check(r.ok, f"watch {path}: HTTP {r.status_code}")
        return r

    def merge_patch(self, path: str, body: dict) -> dict:
        r = self.session.patch(self.server + path, data=json.dumps(body), timeout=(5, 30),
                               headers={"Content-Type": "application/merge-patch+json"})
        check(r.ok, f"PATCH {path}: HTTP {r.status_code} {r.text[:200]}")
        return r.json()


def ready_pod_names(slices: dict[str, dict]) -> set[str]:
    """Names of pods with a ready, not terminating endpoint in any of the slices (missing `ready` = ready)."""
    out = set()
    for s in slices.values():
        for ep in s.get("endpoints") or []:
            cond = ep.get("conditions") or {}
            if cond.get("ready") is not False and not cond.get("terminating"):
                out.add((ep.get("targetRef") or {}).get("name", "?"))
    return out


def only_of(names: set[str], deployment: str, desired: int) -> bool:
    return len(names) >= desired and all(n.startswith(deployment + "-") for n in names)


class SliceWatch:
    """One Service's EndpointSlices: listed, then watched in a thread; `wait(pred)` blocks until pred holds."""

    def __init__(self, raw: RawKube, namespace: str, service: str):
        self.raw, self.namespace, self.service = raw, namespace, service
        self.path = f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
        self.selector = f"kubernetes.io/service-name={service}"
        self.slices: dict[str, dict] = {}
        self.changed = threading.Condition()
        self.history: list[tuple[float, frozenset[str]]] = []  # (perf_counter, ready pod names) per change
        self._resp: requests.Response | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    def start(self) -> "SliceWatch":
        self._connect()  # synchronously: once start() returns, every later change is seen
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"slices-{self.namespace}")
        self._thread.start()
        return self

    def _connect(self) -> None:
        body = self.raw.get(self.path, labelSelector=self.selector)
        with self.changed:
            self.slices = {s["metadata"]["uid"]: s for s in body["items"]}
            self._record()
            self.changed.notify_all()
        self._resp = self.raw.watch(self.path, body["metadata"]["resourceVersion"], labelSelector=self.selector)

    def _record(self) -> None:
        self.history.append((time.perf_counter(), frozenset(ready_pod_names(self.slices))))

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                for line in self._resp.iter_lines():
                    if not line:
                        continue
                    event = json.loads(line)
                    obj = event["object"]
                    with self.changed:
                        if event["type"] == "DELETED":
                            self.slices.pop(obj["metadata"]["uid"], None)
                        elif event["type"] in ("ADDED", "MODIFIED"):
                            self.slices[obj["metadata"]["uid"]] = obj
                        self._record()
                        self.changed.notify_all()
                if not self._stopped.is_set():
                    self._connect()  # the server ended the watch (timeoutSeconds): list and watch again
            except Exception:  # noqa: BLE001 - stop() shut the socket, or the connection dropped
                if not self._stopped.is_set():
                    time.sleep(0.2)
                    try:
                        self._connect()
                    except Exception:  # noqa: BLE001 - try again on the next turn
                        pass

    def ready(self) -> set[str]:
        with self.changed:
            return ready_pod_names(self.slices)

    def wait(self, deployment: str, desired: int, timeout_s: float = 60) -> float:
        """Block until only `deployment`'s pods (>= desired) are ready endpoints; returns perf_counter then."""
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while not only_of(ready_pod_names(self.slices), deployment, desired):
                left = deadline - time.monotonic()
                check(left > 0, f"{self.namespace}/{self.service}: not only {deployment} within {timeout_s:.0f} s: "
                                f"{sorted(ready_pod_names(self.slices))}")
                self.changed.wait(left)
            return time.perf_counter()

    def first_only(self, deployment: str, desired: int, after: float = 0.0) -> float | None:
        """perf_counter of the first recorded change (at or after `after`) where only `deployment` was ready."""
        with self.changed:
            for t, names in self.history:
                if t >= after and only_of(set(names), deployment, desired):
                    return t
        return None

    def stop(self) -> None:
        """Shut the watch's socket down first: closing a response another thread is reading blocks until the
        server ends the watch."""
        self._stopped.set()
        if self._resp is not None:
            try:
                self._resp.raw.connection.sock.shutdown(socket.SHUT_RDWR)
            except (AttributeError, OSError):
                pass
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._resp.close()

    def __enter__(self) -> "SliceWatch":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
