"""Pipeline overhead (issue 16): what a promotion pipeline costs beyond the releases it runs, for 3 stages × 1-2
targets on the three local clusters (tests/cluster/multi.py: started if down, never stopped).

    timeout 1800 .venv/bin/python -m bench.run pipeline --runs 3

Each run: a `bench-pipeline-*` namespace in every cluster with the first tutorial's blue-dep (1 replica) behind
two Services (svc-1, svc-2, each selecting its own blue); the pipeline

    stage 1  staging/svc-1
    stage 2  prod-a/svc-1, prod-b/svc-1   (max_parallel 2)
    stage 3  staging/svc-2, prod-a/svc-2  (max_parallel 2)

with automatic gates and a 1 s scale-down delay, run by the CLI (`greenlight pipeline run --spec F --json`).
Figures per run: the CLI's wall time; the pipeline flow's own seconds; the critical path of its releases (the
sum over stages of the slowest target's release, as the pipeline timed each child flow run); their serial sum;
overhead = flow seconds - critical path (resolve, every target's pre-flight, history reads, events, the report
and the child runs' bookkeeping), and CLI wall - critical path (plus the process start and Prefect's engine).
Checks: outcome completed, every Service serves green-dep.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import yaml

from bench.harness import ROOT, check, child_env, prefect_server
from bench.results import Recorder, say, summary

CLUSTERS = ("staging", "prod-a", "prod-b")
LAYOUT = [("stage-1", ["staging"], "svc-1"), ("stage-2", ["prod-a", "prod-b"], "svc-1"),
          ("stage-3", ["staging", "prod-a"], "svc-2")]


def _given(kubes: dict, ns: str) -> None:
    blue = yaml.safe_load((ROOT / "examples" / "tutorial1" / "blue-dep.yaml").read_text())
    svc = yaml.safe_load((ROOT / "examples" / "tutorial1" / "production-svc-blue.yaml").read_text())
    for kube in kubes.values():
        kube.core.create_namespace({"metadata": {"name": ns, "labels": {"greenlight-bench": "true"}}})
        deadline = time.monotonic() + 30
        while not kube.core.list_namespaced_service_account(ns).items:
            check(time.monotonic() < deadline, f"{ns}: no default ServiceAccount after 30 s")
            time.sleep(0.1)
        for n in (1, 2):
            dep = json.loads(json.dumps(blue).replace("blue-dep", f"blue-{n}"))
            dep["spec"]["replicas"] = 1
            kube.apps.create_namespaced_deployment(ns, dep)
            kube.core.create_namespaced_service(ns, {**svc, "metadata": {"name": f"svc-{n}"},
                                                     "spec": {**svc["spec"], "type": "ClusterIP",
                                                              "selector": {"target": f"blue-{n}"}}})


def _spec(ns: str, pipeline_id: str, path: Path) -> Path:
    release = {"cleanup": {"delay_s": 1}}
    stages = [{"name": name, "max_parallel": 2, "targets": [
        {"name": f"{c}-{svc}", "context": c, "namespace": ns, "service": svc, "release": release}
        for c in contexts]} for name, contexts, svc in LAYOUT]
    path.write_text(yaml.safe_dump({"pipeline_id": pipeline_id, "image": "scubakiz/servicedemo:2.0",
                                    "stages": stages}))
    return path


def _one(kubeconfig: str, kubes: dict, workdir: Path) -> dict:
    ns = f"bench-pipeline-{uuid.uuid4().hex[:6]}"
    _given(kubes, ns)
    try:
        spec = _spec(ns, ns.replace("bench-pipeline", "bp"), workdir / f"{ns}.yaml")
        t0 = time.monotonic()
        proc = subprocess.run([str(ROOT / ".venv" / "bin" / "greenlight"), "pipeline", "run", "--spec", str(spec),
                               "--kubeconfig", kubeconfig, "--json"], check=False, capture_output=True, text=True,
                              timeout=900,
                              env=child_env(KUBECONFIG=kubeconfig), cwd=ROOT)
        wall = time.monotonic() - t0
        check(proc.returncode == 0, f"pipeline exit {proc.returncode}: {proc.stderr[-2000:]}")
        result = json.loads(proc.stdout)
        check(result["outcome"] == "completed", f"pipeline outcome {result['outcome']}")
        check(all(r["serving"].startswith("green-") for r in result["targets"]),
              f"not every Service serves green: {[r['serving'] for r in result['targets']]}")
        by_stage: dict[str, list[float]] = {}
        for r in result["targets"]:
            by_stage.setdefault(r["stage"], []).append(r["seconds"])
        critical = sum(max(v) for v in by_stage.values())
        return {"wall_s": wall, "flow_s": result["seconds"], "critical_path_s": critical,
                "serial_sum_s": sum(sum(v) for v in by_stage.values()),
                "overhead_flow_s": result["seconds"] - critical, "overhead_cli_s": wall - critical}
    finally:
        for kube in kubes.values():
            kube.core.delete_namespace(ns, propagation_policy="Background")


def run(runs: int, tag: str = "") -> dict:
    from prefect_greenlight.tasks.kube.client import connect
    from tests.cluster import multi

    rec = Recorder("pipeline", 1800, tag)
    info = multi.up(len(CLUSTERS))
    kubes = {c: connect(info["kubeconfig"], c) for c in CLUSTERS}
    workdir = Path("/tmp") / f"greenlight-bench-pipeline-{uuid.uuid4().hex[:6]}"
    workdir.mkdir()
    rows = []
    with prefect_server():
        for i in range(runs + 1):  # the first run warms Prefect's database and the imports: not counted
            row = _one(info["kubeconfig"], kubes, workdir)
            say(f"run {i}: {json.dumps({k: round(v, 2) for k, v in row.items()})}" + (" (warm-up)" if i == 0 else ""))
            rec.note_load()
            if i:
                rows.append(row)
    figures = {k: summary([r[k] for r in rows], 2) for k in rows[0]}
    rec.save(layout=[{"stage": s, "contexts": c, "service": v} for s, c, v in LAYOUT], figures=figures,
             memory_mib={c: v["memory_mib"] for c, v in info["clusters"].items()})
    return figures
