"""P-lag: kube-proxy's lag behind a blue-green switch, seen through the Service's ClusterIP, side by side with
greenlight's own "EndpointSlices verified" time.

Each run gets a fresh namespace with the first tutorial's blue (3 replicas, ready) behind production-svc and the
bench ServiceAccount, then:

  traffic      tests/e2e/traffic.py's TrafficCheck: an agent INSIDE the local cluster's network namespace sends
               GETs to production-svc's ClusterIP (default 100/s: half on a new connection each, half on 4
               keep-alive connections replaced every 20 requests), through kube-proxy's nftables rules to the
               pod-IP server; every request is recorded with its send time and the pod that answered
  release      `python -m prefect_greenlight.cli blue-green -n NS --service production-svc --manifest
               green-dep.yaml --json` with greenlight's defaults (smoke test, switch, verify, cleanup scale-to-zero
               after the 30 s scale-down delay), started after LEAD_S of traffic on blue; the traffic goes on
               until blue's pods are gone and TAIL_S more
  observers    in this process: the apiserver audit log (when the apiserver answered the selector PATCH of the
               bench ServiceAccount), a watch on the Service (when the change was published), a watch on its
               EndpointSlices (when the cluster was green-only), and the flow run's `switch-traffic` and
               `verify-endpoints` task runs on the bench's Prefect server (the latter's end: greenlight's
               "EndpointSlices verified")

Figures, each relative to the PATCH (when the apiserver answered it: the audit log's stageTimestamp, microseconds;
the Service watch's event, a few ms later, is kept as a cross-check), from the same runs:
  service watch     the bench's Service watch saw green's selector
  slices            the EndpointSlices held only green's ready pods (independent watch)
  verified          end of greenlight's verify-endpoints task run (Prefect's record): "EndpointSlices verified"
  first green       first request answered by green through the VIP
  last blue (new)   last request on a NEW connection answered by blue: kube-proxy's rules moved before the next one
  last blue (any)   keep-alive included: connections opened before the move stay on blue until they are replaced
  failed            requests with a connection error, a timeout or a 5xx, over the whole release
and, from kube-proxy's metrics (read inside the namespace, on its loopback), its rule syncs during the runs and their
mean duration. (Its network-programming histogram is left out: it counts from the EndpointSlice's
`last-change-trigger-time`, which for a selector change is the newly selected pods' Ready time, seconds before the
PATCH, so it does not measure the switch.) Checked (BenchError
otherwise): exit 0, released to green-dep, green answered, blue stopped answering, the PATCH seen by the watch and
by the audit log, the verify-endpoints task run found, the agent never stopped early.

Addresses in 10.0.0.0/8 are used only inside the cluster's own network namespace (the agent and the metrics
reader run under `ip netns exec`); this process only talks to the apiserver and Prefect on 127.0.0.1.
"""

from __future__ import annotations

import calendar
import json
import socket
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench import harness
from bench.audit import LOG as AUDIT_LOG
from bench.given import SERVICE1, assert_released_blue_green, tutorial1
from bench.harness import (
    KUBECONFIG,
    PYTHON,
    TUTORIAL1,
    check,
    child_env,
    create_namespace,
    delete_created,
    ensure_cluster,
    kube,
    prefect_server,
    service_account_kubeconfig,
)
from bench.rawkube import RawKube, SliceWatch
from bench.release import spawn
from bench.results import Recorder, ratio, say, summary

LEAD_S = 2.0  # traffic on blue before the release starts
TAIL_S = 3.0  # traffic after blue's pods are gone
DEFAULT_DELAY_S = 30.0  # greenlight's default scale-down delay (tasks/spec), quoted in the ratios
pc = time.perf_counter


# --------------------------------------------------------------------------------------------- observers
class ServiceWatch:
    """One Service, listed then watched in a thread; `history` is (wall clock when seen, selector) per change.
    The first event showing green's selector is the PATCH as the cluster published it."""

    def __init__(self, raw: RawKube, namespace: str, name: str):
        self.raw, self.name = raw, name
        self.path = f"/api/v1/namespaces/{namespace}/services"
        self.history: list[tuple[float, dict]] = []
        self._resp: requests.Response | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"svc-{namespace}")

    def _connect(self) -> None:
        body = self.raw.get(self.path, fieldSelector=f"metadata.name={self.name}")
        for item in body["items"]:
            self.history.append((time.time(), item["spec"].get("selector") or {}))
        self._resp = self.raw.watch(self.path, body["metadata"]["resourceVersion"],
                                    fieldSelector=f"metadata.name={self.name}")

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                for line in self._resp.iter_lines():
                    if line:
                        event = json.loads(line)
                        if event["type"] in ("ADDED", "MODIFIED"):
                            self.history.append((time.time(), event["object"]["spec"].get("selector") or {}))
                if not self._stopped.is_set():
                    self._connect()
            except Exception:  # noqa: BLE001 - stop() shut the socket, or the watch ended: list and watch again
                if not self._stopped.is_set():
                    time.sleep(0.2)
                    try:
                        self._connect()
                    except Exception:  # noqa: BLE001
                        pass

    def first_selecting(self, selector: dict) -> float | None:
        return next((t for t, s in self.history if s == selector), None)

    def __enter__(self) -> "ServiceWatch":
        self._connect()  # synchronously: every later change is seen
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        try:
            self._resp.raw.connection.sock.shutdown(socket.SHUT_RDWR)
        except (AttributeError, OSError):
            pass
        self._thread.join(timeout=5)
        self._resp.close()


def _epoch(stamp: str) -> float:
    """An RFC 3339 timestamp with optional fraction and Z (the audit log's, the annotation's) -> epoch seconds."""
    base, _, frac = stamp.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + (float(f"0.{frac}") if frac else 0.0)


def audit_patch_time(user: str, namespace: str, offset: int) -> float | None:
    """When the apiserver answered the release's selector PATCH (stageTimestamp of ResponseComplete): the first
    `patch services/production-svc` of `user` in the audit log after byte `offset`."""
    time.sleep(0.5)  # the audit backend writes in batches
    with open(AUDIT_LOG, "rb") as f:
        f.seek(offset)
        for line in f:
            if f'"username":"{user}"'.encode() not in line or b'"verb":"patch"' not in line:
                continue
            e = json.loads(line)
            ref = e.get("objectRef") or {}
            if ref.get("resource") == "services" and ref.get("name") == SERVICE1 and \
                    ref.get("namespace") == namespace and e.get("stage") == "ResponseComplete":
                return _epoch(e["stageTimestamp"])
    return None


def prefect_task_times(flow_run_started: float, names: tuple[str, ...] = ("switch-traffic", "verify-endpoints"),
                       timeout_s: float = 20) -> dict[str, tuple[float, float]]:
    """(start, end) wall clock of the newest flow run's task runs named `names` (the bench's own Prefect server
    runs one release at a time); waits until the server has recorded them Completed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)
            found: dict[str, tuple[float, float]] = {}
            if runs and runs[0].start_time and runs[0].start_time.timestamp() >= flow_run_started - 1:
                tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[runs[0].id])))
                for t in tasks:
                    name = next((n for n in names if t.name.startswith(n)), None)
                    if name and t.state and t.state.is_completed() and t.start_time and t.end_time:
                        found[name] = (t.start_time.timestamp(), t.end_time.timestamp())
            if len(found) == len(names):
                return found
            check(time.monotonic() < deadline, f"task runs {names} not recorded Completed within {timeout_s:.0f} s "
                                               f"(found {sorted(found)})")
            time.sleep(0.5)


_METRICS = """
import json, urllib.request
out = {}
with urllib.request.urlopen("http://127.0.0.1:%d/metrics", timeout=3) as r:
    for line in r.read().decode().splitlines():
        if 'ip_family="IPv4"' in line and ("_sum{" in line or "_count{" in line):
            name = line.split("{", 1)[0]
            if name.startswith("kubeproxy_sync_proxy_rules_duration_seconds"):
                out[name] = float(line.split()[-1])
print(json.dumps(out))
"""


def proxy_metrics(netns: str) -> dict[str, float]:
    """kube-proxy's rule-sync histogram (sum, count; IPv4), read inside the namespace from
    its own loopback (127.0.0.1:10249)."""
    from tests.cluster import netplane

    proc = netplane.netns_python(netns, _METRICS % netplane.KUBE_PROXY_METRICS)
    check(proc.returncode == 0, f"kube-proxy metrics: {proc.stderr.strip()[-300:]}")
    return json.loads(proc.stdout)


def _mean_between(before: dict, after: dict, name: str) -> tuple[int, float | None]:
    n = int(after.get(f"{name}_count", 0) - before.get(f"{name}_count", 0))
    return n, ((after.get(f"{name}_sum", 0) - before.get(f"{name}_sum", 0)) / n if n else None)


def cluster_netns() -> str:
    """The shared cluster's network namespace, from the launcher's state (cluster.json)."""
    from tests.cluster import launcher, netplane

    name = launcher.status().get("netns")
    check(name and netplane.netns_exists(name), f"the cluster's network namespace {name!r} is missing "
                                                "(restart the cluster: launcher down; launcher up)")
    return name


def wait_pods_gone(namespace: str, deployment: str, timeout_s: float = 90) -> float:
    """Until no pod of `deployment` exists (kwok ends a deleted pod's grace in about a second); wall clock then."""
    k = kube()
    deadline = time.monotonic() + timeout_s
    while k.core.list_namespaced_pod(namespace, label_selector=f"target={deployment}").items:
        check(time.monotonic() < deadline, f"{namespace}: pods of {deployment} still there after {timeout_s:.0f} s")
        time.sleep(0.2)
    return time.time()


# --------------------------------------------------------------------------------------------------- runs
def _argv(namespace: str, kubeconfig: str, cleanup: str | None, delay: float | None) -> list[str]:
    return [PYTHON, "-m", "prefect_greenlight.cli", "blue-green", "-n", namespace, "--service", SERVICE1,
            "--manifest", str(TUTORIAL1 / "green-dep.yaml"), "--json", "--kubeconfig", kubeconfig,
            *(["--cleanup", cleanup] if cleanup else []),
            *(["--scale-down-delay", str(delay)] if delay is not None else [])]


def one_run(raw: RawKube, netns: str, workdir: Path, rate: float, cleanup: str | None = None,
            delay: float | None = None) -> dict:
    """One release under ClusterIP traffic in a fresh namespace, measured and checked."""
    from tests.e2e.traffic import TrafficCheck

    ns = create_namespace("lag")
    tutorial1(ns)
    kubeconfig, user = service_account_kubeconfig(ns, workdir)
    env = {**child_env(), "PYTHONPATH": f"{harness.CODE}:{harness.ROOT}"}
    wall_minus_pc = time.time() - pc()  # SliceWatch records perf_counter; requests are wall clock
    audit_offset = AUDIT_LOG.stat().st_size
    with ServiceWatch(raw, ns, SERVICE1) as svc, SliceWatch(raw, ns, SERVICE1) as slices, \
            TrafficCheck(netns, KUBECONFIG, ns, SERVICE1, rate=rate, duration_s=300) as traffic:
        time.sleep(LEAD_S)
        spawned = time.time()
        r = spawn(_argv(ns, kubeconfig, cleanup, delay), env, harness.CODE, workdir)
        check(r["rc"] == 0, f"release in {ns} exited {r['rc']}:\n{r['stderr'][-3000:]}\n{r['stdout'][-2000:]}")
        blue_gone = wait_pods_gone(ns, "blue-dep") if cleanup != "keep" else None
        time.sleep(TAIL_S)
    result = traffic.result
    out = json.loads(r["stdout"])
    check(out["outcome"] == "released" and out["live_deployment"] == "green-dep", f"bad result {out}")
    assert_released_blue_green(ns, blue_kept=cleanup == "keep")
    check(not result.stopped_early, f"the traffic agent stopped early: {result.summary()}")
    seen = svc.first_selecting({"target": "green-dep"})
    check(seen, f"{ns}: the Service watch never saw green's selector")
    patch = audit_patch_time(user, ns, audit_offset)
    check(patch and abs(seen - patch) < 1, f"{ns}: no audit line for the selector PATCH of {user} near {seen}")
    tasks = prefect_task_times(spawned)
    green_only = slices.first_only("green-dep", 3, after=patch - wall_minus_pc - 1)
    check(green_only, f"{ns}: the EndpointSlice watch never saw green-only")
    first_green = result.first_answer("green-dep")
    last_blue_new = max((q.t for q in result.answered() if q.deployment == "blue-dep" and q.conn == "new"),
                        default=None)
    last_blue_any = result.last_answer("blue-dep")
    check(first_green and last_blue_new and last_blue_any, f"{ns}: {result.summary()}")
    failed = result.failed()
    return {"namespace": ns, "wall_s": round(r["wall_s"], 3), "sent": result.sent(), "rate": round(result.rate(), 1),
            "failed": len(failed), "failed_detail": [(round(q.t - patch, 3), q.conn, q.pod, q.error or q.status)
                                                     for q in failed][:20],
            "switch_task_end_s": tasks["switch-traffic"][1] - patch, "service_watch_s": seen - patch,
            "slices_green_only_s": green_only + wall_minus_pc - patch,
            "verified_s": tasks["verify-endpoints"][1] - patch,
            "first_green_s": first_green - patch, "last_blue_new_s": last_blue_new - patch,
            "last_blue_any_s": last_blue_any - patch, "blue_gone_s": (blue_gone - patch) if blue_gone else None,
            "steps": {s["step"]: s["seconds"] for s in out["steps"]}, "summary": result.summary(),
            "around_patch": [(round((q.t - patch) * 1000, 1), q.conn, q.cid, q.deployment or q.error[:40],
                              round(q.latency_s * 1000, 1)) for q in result.requests if -0.2 <= q.t - patch < 2.0]}


KEYS = ("switch_task_end_s", "service_watch_s", "slices_green_only_s", "verified_s", "first_green_s",
        "last_blue_new_s", "last_blue_any_s", "blue_gone_s", "failed", "sent", "wall_s")


def run(runs: int = 5, rate: float = 100.0, cleanup: str | None = None, delay: float | None = None,
        tag: str = "") -> dict:
    ensure_cluster()
    netns = cluster_netns()
    rec = Recorder("plag-proxylag", 1800, tag)
    raw = RawKube()
    results: list[dict] = []
    with prefect_server() as server, tempfile.TemporaryDirectory(prefix="greenlight-bench-") as tmp:
        workdir = Path(tmp)
        try:
            say("warm-up run (discarded: first flow run on the server), blue kept")
            warm = one_run(raw, netns, workdir, rate, cleanup="keep")
            delete_created()
            before = proxy_metrics(netns)
            for i in range(runs):
                load_now = rec.note_load()
                r = one_run(raw, netns, workdir, rate, cleanup, delay)
                r["load"] = load_now
                results.append(r)
                say(f"run {i + 1}/{runs}: PATCH -> verified {r['verified_s'] * 1000:.0f} ms, slices "
                    f"{r['slices_green_only_s'] * 1000:.0f} ms, first green {r['first_green_s'] * 1000:.0f} ms, "
                    f"last blue new {r['last_blue_new_s'] * 1000:.0f} ms / any {r['last_blue_any_s'] * 1000:.0f} ms; "
                    f"{r['failed']} of {r['sent']} failed")
                delete_created()
            after = proxy_metrics(netns)
        finally:
            delete_created()
    figures: dict = {"prefect_api": server.url, "netns": netns, "rate": rate, "cleanup": cleanup or "default",
                     "scale_down_delay_s": delay if delay is not None else DEFAULT_DELAY_S, "warm_up": warm}
    figures["figures"] = {k: summary([r[k] for r in results if r[k] is not None]) for k in KEYS}
    med = {k: v["median"] for k, v in figures["figures"].items()}
    figures["ratios_to_verified"] = {k: ratio(med[k], med["verified_s"]) for k in
                                     ("slices_green_only_s", "first_green_s", "last_blue_new_s", "last_blue_any_s")}
    figures["delay_over_last_blue_any"] = ratio(figures["scale_down_delay_s"], med["last_blue_any_s"])
    figures["failed_total"] = sum(r["failed"] for r in results)
    syncs, sync_mean = _mean_between(before, after, "kubeproxy_sync_proxy_rules_duration_seconds")
    figures["kube_proxy"] = {"syncs": syncs, "sync_mean_s": sync_mean and round(sync_mean, 4)}
    rec.save(**figures, runs=results)
    return {k: v for k, v in figures.items() if k not in ("warm_up",)}
