"""Helpers for the fault-injection e2e tests (tests/e2e/test_faults.py): run the real CLI with a chosen kubeconfig
and environment, poll through apiserver outages, record every Deployment's replicas over time, and restart the
local cluster's apiserver.

Every wait is bounded. Polls treat an error as "not yet" (the apiserver may be down on purpose).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from prefect_greenlight.tasks.kube.client import Kube
from tests.e2e.release_helpers import ROOT, cli_env
from tests.json_schema import check_cli_json

GREEN_SLOW = "scubakiz/servicedemo:fault-slowready-{n}"


def require_local(cluster) -> None:
    assert cluster.local, ("fault tests restart the apiserver and use fault images: they need the local cluster "
                           "(GREENLIGHT_TEST_KUBECONFIG is set)")


# ------------------------------------------------------------------------------------------------------ CLI
@dataclass
class Cli:
    """A background `greenlight ...` process; output in `log`."""

    proc: subprocess.Popen
    log: Path
    started: float

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            raise AssertionError(f"greenlight still running after {timeout:.0f} s:\n{self.text()[-4000:]}")

    def kill(self) -> float:
        """SIGKILL the whole process group (the CLI and anything it started); returns when."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        return time.monotonic()

    def alive(self) -> bool:
        """True while running; fails the test with the output when it has ended."""
        assert self.proc.poll() is None, f"greenlight ended ({self.proc.returncode}):\n{self.text()[-3000:]}"
        return True

    def seen(self, needle: str) -> bool:
        assert self.proc.poll() is None or needle in self.text(), \
            f"greenlight ended ({self.proc.returncode}) before {needle!r}:\n{self.text()[-3000:]}"
        return needle in self.text()

    def result(self) -> dict:
        """The --json result printed at the end."""
        text = self.text()
        return json.loads(text[text.rindex("\n{\n") + 1:] if "\n{\n" in text else text[text.index("{"):])


def start_cli(cluster, prefect_api: str, *args: str, log: Path, env: dict[str, str] | None = None) -> Cli:
    out = open(log, "w")
    proc = subprocess.Popen([sys.executable, "-m", "prefect_greenlight.cli", *args], stdout=out, stderr=subprocess.STDOUT,
                            env=env or cli_env(cluster, prefect_api), cwd=ROOT, start_new_session=True)
    out.close()
    return Cli(proc, log, time.monotonic())


def run_cli(cluster, prefect_api: str, *args: str, env: dict[str, str] | None = None,
            timeout: float = 240) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "prefect_greenlight.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env or cli_env(cluster, prefect_api), cwd=ROOT)
    check_cli_json(args, proc.stdout)  # a --json output follows docs/schema/output.schema.json
    return proc


# ------------------------------------------------------------------------------------------------ polling
def poll(what: str, check, timeout: float = 60, interval: float = 0.1):
    """Call `check` until it returns something truthy; an exception counts as "not yet" (an AssertionError, e.g.
    from Cli.alive, fails at once)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except AssertionError:
            raise
        except Exception as exc:  # noqa: BLE001 - the apiserver may be down on purpose
            last = exc
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}"
        time.sleep(interval)


def deployment(kube: Kube, namespace: str, name: str) -> dict | None:
    from kubernetes.client.rest import ApiException

    try:
        resp = kube.apps.read_namespaced_deployment(name, namespace, _preload_content=False,
                                                    _request_timeout=(3, 10))
        return json.loads(resp.data)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def selector_of(kube: Kube, namespace: str, service: str) -> dict:
    resp = kube.core.read_namespaced_service(service, namespace, _preload_content=False, _request_timeout=(3, 10))
    return json.loads(resp.data)["spec"].get("selector") or {}


def pods_without_forward(kube: Kube, namespace: str) -> list[str]:
    """Pods of the namespace for which the app plane has not made its kwok PortForward yet (smoke checks through
    port-forward would find nothing). Restarts are triggered only once this is empty: the app plane drops a
    PortForward it failed to create during an outage (see the report of issue #6), which is the test cluster's
    fault, not greenlight's."""
    from kubernetes import client

    pods = {p.metadata.name for p in kube.core.list_namespaced_pod(namespace, _request_timeout=(3, 10)).items}
    forwards = client.CustomObjectsApi(kube.api).list_namespaced_custom_object(
        "kwok.x-k8s.io", "v1alpha1", namespace, "portforwards", _request_timeout=(3, 10))["items"]
    return sorted(pods - {f["metadata"]["name"] for f in forwards})


def lease_holder(kube: Kube, namespace: str, service: str) -> str:
    from kubernetes.client.rest import ApiException

    try:
        lease = kube.coordination.read_namespaced_lease(f"greenlight-{service}", namespace, _request_timeout=(3, 10))
    except ApiException as exc:
        if exc.status == 404:
            return ""
        raise
    return lease.spec.holder_identity or ""


# ------------------------------------------------------------------------------------------ replica recorder
@dataclass(frozen=True)
class Sample:
    t: float
    replicas: int | None  # None: the Deployment does not exist
    ready: int


@dataclass
class ReplicaRecorder:
    """Polls the namespace's Deployments every `interval` s and keeps each change of (spec.replicas, ready) per
    Deployment, with its monotonic time. Errors (apiserver down) are skipped."""

    kube: Kube
    namespace: str
    interval: float = 0.1
    history: dict[str, list[Sample]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> "ReplicaRecorder":
        threading.Thread(target=self._run, daemon=True, name="replica-recorder").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                resp = self.kube.apps.list_namespaced_deployment(self.namespace, _preload_content=False,
                                                                 _request_timeout=(2, 5))
                items = {d["metadata"]["name"]: d for d in json.loads(resp.data)["items"]}
                now = time.monotonic()
                for name in set(items) | set(self.history):
                    d = items.get(name)
                    s = Sample(now, None, 0) if d is None else Sample(
                        now, int(d["spec"].get("replicas", 1)), int((d.get("status") or {}).get("readyReplicas") or 0))
                    hist = self.history.setdefault(name, [])
                    if not hist or (hist[-1].replicas, hist[-1].ready) != (s.replicas, s.ready):
                        hist.append(s)
            except Exception:  # noqa: BLE001
                pass
            self._stop.wait(self.interval)

    def first_below(self, name: str, replicas: int) -> float | None:
        """When `name` first had fewer than `replicas` desired or ready replicas (or vanished): the moment its
        removal began (a foreground delete takes the pods before the Deployment). None if never."""
        for s in self.history.get(name, []):
            if s.replicas is None or s.replicas < replicas or s.ready < replicas:
                return s.t
        return None

    def describe(self, name: str, since: float) -> str:
        return ", ".join(f"+{s.t - since:.1f}s {s.replicas}/{s.ready}" for s in self.history.get(name, []))


# -------------------------------------------------------------------------------------------- apiserver
def restart_apiserver(down_s: float) -> dict[str, float]:
    """Stop the local cluster's apiserver, keep it down `down_s`, start it again (same port, flags, certs, etcd)
    and wait for /readyz; the controllers are probed separately (see ensure_cluster_healthy)."""
    from tests.cluster import launcher

    stop_s = launcher.stop_apiserver()
    time.sleep(down_s)
    ready_s = launcher.start_apiserver()
    return {"stop_s": round(stop_s, 2), "down_s": down_s, "ready_s": round(ready_s, 2)}


def ensure_cluster_healthy() -> float:
    """Block until every controller of the local cluster works again (later tests need it)."""
    from tests.cluster import launcher
    from tests.cluster.probe import probe_workloads

    return probe_workloads(launcher.STATE / "kubeconfig", timeout_s=180)
