"""No lost release: 50 releases started at once against one Prefect server on its embedded SQLite database all
start and finish (tasks/prefect_adapter/starting.py: Prefect's client retries plus greenlight's start retry). Kept
cheap: 50 dry runs of 50 distinct Services in one namespace (each plans blue-dep -> green-dep: one flow run, its task
runs, a plan artifact and its logs each — the writes that collide on SQLite), from one process in 50 threads
(bench/driver.py, as a worker running releases in-process would), so they really hit the server together."""

from __future__ import annotations

import json
import subprocess
import sys

from prefect_greenlight.tasks.kube.client import read
from tests.e2e.prefect_ops import all_flow_runs
from tests.e2e.release_helpers import ROOT, TUTORIAL1, tutorial1

N = 50


def test_fifty_releases_at_once_on_sqlite_all_start_and_finish(cluster, prefect_api, kube, namespace, kubectl,
                                                               tmp_path):
    tutorial1(kubectl, kube, namespace)
    services = ["production-svc"] + [f"svc-{i:02d}" for i in range(1, N)]
    for name in services[1:]:
        kube.core.create_namespaced_service(namespace, {
            "metadata": {"name": name},
            "spec": {"selector": {"target": "blue-dep"}, "ports": [{"name": "web", "port": 8080, "targetPort": 80}]}})
    jobs, out = tmp_path / "jobs.json", tmp_path / "out.json"
    jobs.write_text(json.dumps({"targets": [[namespace, s] for s in services], "limit": 0, "dry_run": True,
                                "kubeconfig": cluster.kubeconfig, "manifest": str(TUTORIAL1 / "green-dep.yaml")}))
    env = {"PREFECT_API_URL": prefect_api, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "DO_NOT_TRACK": "1"}
    run = subprocess.run([sys.executable, "-m", "bench.driver", str(jobs), str(out)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=540, check=False)
    restarts = run.stderr.count("the release did not start")
    print(f"{N} dry runs at once: exit {run.returncode}, {restarts} start(s) retried by greenlight")
    results = json.loads(out.read_text())["results"]
    failed = [r for r in results if r["outcome"] != "dry-run"]
    assert run.returncode == 0 and not failed, (failed[:3], run.stderr[-3000:])
    assert sorted(r["service"] for r in results) == sorted(services)

    found = all_flow_runs(prefect_api)
    ours = [f for f in found if (f.get("parameters") or {}).get("spec", {}).get("namespace") == namespace]
    assert sorted(f["parameters"]["spec"]["service"] for f in ours) == sorted(services), len(ours)
    assert {f["state_type"] for f in ours} == {"COMPLETED"}, [(f["name"], f["state_type"]) for f in ours]
    assert read(kube, "Deployment", namespace, "green-dep") is None  # dry runs: nothing changed
    assert read(kube, "Lease", namespace, "greenlight-production-svc") is None
