"""Several greenlight workers, one pool, each release run once: Prefect on PostgreSQL (the bench's throw-away
PostgreSQL, bench/harness.py), three greenlight workers each standing for a host of its own (a process tree and a
UTS namespace each: its own hostname, hence its own identity in the runs' infrastructure ids), `--limit` each, and
N deployment runs created at once (GREENLIGHT_TEST_RELEASES, 12 by default), each releasing the first tutorial in
a namespace of its own while ClusterIP traffic runs.

Exactly once, from Prefect's side: every run was claimed (Pending) and went Running once (its state history;
run_count 1); every worker that tried to submit it but one was refused by the server ("Aborted submission ...: This
run is in a PENDING state and cannot transition to a PENDING state", the workers' logs), and the one left is the
run's owner (its infrastructure id). From the cluster's side: every Service switched to green and
its release history holds one entry, naming that run. Spread: every worker ran releases, none more at a time than
its limit."""

from __future__ import annotations

import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from bench.harness import postgres
from prefect_greenlight.tasks.decisions.history import read_history
from prefect_greenlight.tasks.kube.client import read
from prefect_greenlight.tasks.prefect_adapter.heartbeats import AUTOMATION_NAME
from prefect_greenlight.worker.decisions import InfraId
from tests.conftest import start_prefect_server
from tests.e2e.prefect_ops import FINAL, PREFECT, ROOT, PrefectOps, Worker, api_call, create_pool, prefect_env
from tests.e2e.release_helpers import TUTORIAL1, given_ready, selector

RELEASES = int(os.environ.get("GREENLIGHT_TEST_RELEASES", "12"))
WORKERS = ("gl-host-a", "gl-host-b", "gl-host-c")
LIMIT = math.ceil(RELEASES / len(WORKERS))  # all at once needs all three
SERVICE = "production-svc"
POOL = "greenlight"
LOGS = ROOT / ".cache" / "test-logs"


@pytest.fixture(scope="module")
def pg_api():
    """A Prefect server of its own on a throw-away PostgreSQL; blue-green deployed on pool `greenlight`."""
    home = Path(tempfile.mkdtemp(prefix="greenlight-pg-prefect-"))
    try:
        with postgres() as db, start_prefect_server(home, {"PREFECT_API_DATABASE_CONNECTION_URL": db}) as url:
            create_pool(url, POOL, "greenlight")
            out = subprocess.run([*PREFECT, "--no-prompt", "deploy", "--name", "blue-green"], capture_output=True,
                                 text=True, env=prefect_env(url), timeout=300, cwd=ROOT)
            assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
            yield url
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _worker(api: str, kubeconfig: str, host: str) -> Worker:
    """A greenlight worker as if on host `host`: its own UTS namespace and hostname, its own process group."""
    command = shlex.join([sys.executable, "-m", "prefect_greenlight.cli", "worker", "--pool", POOL,
                          "--limit", str(LIMIT), "--name", host])
    return Worker(api, kubeconfig, LOGS / f"worker-{host}.log",
                  command=["unshare", "--uts", "sh", "-c", f"hostname {host} && exec {command}"])


def _namespaces(kube, cluster, count: int) -> list[str]:
    names = [f"t-pool-{i:02d}-{os.urandom(3).hex()}" for i in range(count)]
    for name in names:
        kube.core.create_namespace({"metadata": {"name": name, "labels": {"greenlight-test": "true"}}})
    for name in names:
        for path in (TUTORIAL1 / "blue-dep.yaml", TUTORIAL1 / "production-svc-blue.yaml"):
            deadline = time.monotonic() + 60  # a fresh namespace's default ServiceAccount comes a moment later
            while True:
                out = subprocess.run([cluster.kubectl, f"--kubeconfig={cluster.kubeconfig}", "-n", name, "apply",
                                      "-f", str(path)], capture_output=True, text=True, timeout=60)
                if out.returncode == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert out.returncode == 0, out.stderr
    for name in names:
        given_ready(kube, name, "blue-dep", timeout=300)
    return names


def _states(api: str, run_id: str) -> list[dict]:
    resp = api_call("GET", f"{api}/flow_run_states/?flow_run_id={run_id}")
    resp.raise_for_status()
    return sorted(resp.json(), key=lambda s: s["timestamp"])


def _history(states: list[dict]) -> list[str]:
    return [f"{s['timestamp'][11:23]} {s['type']} {s['name']} {(s.get('message') or '')[:80]}" for s in states]


def _wait_all(ops: PrefectOps, runs: list[str], timeout_s: float) -> dict[str, dict]:
    deadline, done = time.monotonic() + timeout_s, {}
    while len(done) < len(runs) and time.monotonic() < deadline:
        for run in runs:
            if run not in done and (flow_run := ops.flow_run(run)).get("state", {}).get("type") in FINAL:
                done[run] = flow_run
        time.sleep(1)
    assert len(done) == len(runs), f"{len(runs) - len(done)} of {len(runs)} runs not final after {timeout_s} s"
    return done


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def _exactly_once(api: str, kube, run: str, ns: str, flow_run: dict, logs: dict[str, str]) -> tuple[str, bool]:
    """One run, judged: claimed once, Running once, one worker left submitting it (the others aborted by the
    server), that worker its owner; its Service released once, by it. Returns (owner host, contested)."""
    states = _states(api, run)
    claims = [s for s in states if s["type"] == "PENDING" and s["name"] == "Pending"]
    running = [s for s in states if s["type"] == "RUNNING"]
    assert len(claims) == 1 and len(running) == 1, "\n".join([run, *_history(states)])
    assert flow_run["run_count"] == 1, flow_run
    tried = {h for h, text in logs.items() if f"submitting flow run '{run}'" in text}
    aborted = {h for h, text in logs.items() if f"Aborted submission of flow run '{run}'" in text}
    assert len(tried - aborted) == 1 and aborted <= tried, (run, tried, aborted)
    owner = InfraId.parse(flow_run["infrastructure_pid"])
    assert owner is not None and {owner.host} == tried - aborted, (flow_run["infrastructure_pid"], tried, aborted)
    assert selector(kube, ns, SERVICE) == {"target": "green-dep"}
    history = read_history(read(kube, "Service", ns, SERVICE))
    assert [(h.flow_run_id, h.outcome) for h in history] == [(run, "released")], history
    return owner.host, len(tried) > 1


def test_n_releases_on_three_workers_each_run_exactly_once(pg_api, cluster, kube, netns, traffic):
    ops = PrefectOps(pg_api)
    ops.refresh()
    namespaces = _namespaces(kube, cluster, RELEASES)
    manifest = yaml.safe_load((TUTORIAL1 / "green-dep.yaml").read_text())
    workers = [_worker(pg_api, cluster.kubeconfig, host) for host in WORKERS]
    try:
        with ExitStack() as stack:
            checks = [stack.enter_context(traffic(ns, SERVICE, 8080, rate=2, duration_s=900)) for ns in namespaces]
            started = time.monotonic()
            with ThreadPoolExecutor(RELEASES) as pool:  # created at once, as many callers would
                runs = list(pool.map(lambda ns: ops.run("blue-green", {"spec": {
                    "namespace": ns, "service": SERVICE, "manifest": manifest, "cleanup": {"mode": "keep"}}}),
                    namespaces))
            finished = _wait_all(ops, runs, 300 + 10 * RELEASES)
            wall = time.monotonic() - started
        assert {r["state"]["type"] for r in finished.values()} == {"COMPLETED"}, \
            {r["id"]: r["state"]["message"] for r in finished.values() if r["state"]["type"] != "COMPLETED"}
        logs = {host: w.log() for host, w in zip(WORKERS, workers)}
        hosts: Counter = Counter()
        per_host: dict[str, list[tuple[float, float]]] = {}
        contested = 0
        for run, ns in zip(runs, namespaces):
            owner, was_contested = _exactly_once(pg_api, kube, run, ns, finished[run], logs)
            contested += was_contested
            hosts[owner] += 1
            per_host.setdefault(owner, []).append((_ts(finished[run]["start_time"]), _ts(finished[run]["end_time"])))
        at_once = {host: _most_at_once(spans) for host, spans in per_host.items()}
        automations = api_call("POST", f"{pg_api}/automations/filter", json={}).json()
        assert [a["name"] for a in automations].count(AUTOMATION_NAME) == 1, "three workers, one crash automation"
        print(f"{RELEASES} releases on {len(WORKERS)} workers (limit {LIMIT} each), PostgreSQL: all final in "
              f"{wall:.1f} s; runs per worker {dict(hosts)}; most at once per worker {at_once}; "
              f"{contested} runs claimed by more than one worker, all but one aborted by the server")
        assert set(hosts) == set(WORKERS), f"not spread across the workers: {dict(hosts)}"
        assert max(at_once.values()) <= LIMIT, at_once
        failed = [c.result.summary() for c in checks if c.result.failed()]
        print(f"ClusterIP: {sum(len(c.result.requests) for c in checks)} requests, {len(failed)} checks with failures")
        assert not failed, failed
    finally:
        for worker in workers:
            worker.stop()
        for ns in namespaces:
            kube.core.delete_namespace(ns, propagation_policy="Background")
