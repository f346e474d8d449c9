"""P7 large Deployments: apiserver requests and wall time beyond the pods' own readiness, for a blue-green release
of 3, 30 and 150 replicas (image mode, smoke test on a sample of 5 pods, blue kept).

Each run gets a fresh namespace with the first tutorial's blue scaled to N (ready, all N in the Service's
EndpointSlices) and the bench ServiceAccount, so the release's requests are exactly that user's audit-log lines.
"Beyond readiness" is the CLI's wall time less the wait-ready step (green's N pods becoming ready, the kubelet's
work, not greenlight's). The goal: requests independent of N, apart from watch events (a watch is one request
however many events it carries).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import yaml

from bench import harness
from bench.audit import AuditCursor, breakdown
from bench.given import SERVICE1, tutorial1, wait_ready, wait_serving
from bench.harness import (
    PYTHON,
    check,
    child_env,
    create_namespace,
    delete_created,
    ensure_cluster,
    kubectl,
    prefect_server,
    service_account_kubeconfig,
)
from bench.release import spawn
from bench.results import Recorder, say, summary


def _given_blue(replicas: int) -> str:
    ns = create_namespace(f"scale-{replicas}")
    tutorial1(ns)
    if replicas != 3:
        kubectl(ns, "scale", "deployment/blue-dep", f"--replicas={replicas}")
        wait_ready(ns, "blue-dep", replicas, timeout_s=300)
        wait_serving(ns, SERVICE1, "blue-dep", replicas, timeout_s=120)
    return ns


def one_run(replicas: int, workdir: Path) -> dict:
    ns = _given_blue(replicas)
    kubeconfig, user = service_account_kubeconfig(ns, workdir)
    spec = workdir / f"spec-{ns}.yaml"
    spec.write_text(yaml.safe_dump({"smoke": [{"path": "/", "pods": 5}], "cleanup": {"mode": "keep"},
                                    "deadlines": {"ready_s": 600, "endpoints_s": 300}}))
    argv = [PYTHON, "-m", "prefect_greenlight.cli", "blue-green", "-n", ns, "--service", SERVICE1, "--image",
            "scubakiz/servicedemo:2.0", "--spec", str(spec), "--json", "--kubeconfig", kubeconfig]
    cursor = AuditCursor()
    r = spawn(argv, {**child_env(), "PYTHONPATH": f"{harness.CODE}:{harness.ROOT}"}, harness.CODE, workdir)
    check(r["rc"] == 0, f"release of {replicas} replicas in {ns} exited {r['rc']}:\n{r['stderr'][-3000:]}")
    result = json.loads(r["stdout"])
    check(result["outcome"] == "released" and result["live_deployment"] == "green-dep", f"bad result {result}")
    wait_serving(ns, SERVICE1, "green-dep", replicas, timeout_s=30)
    reqs = cursor.requests(user)
    check(reqs, f"no audit lines for {user}")
    steps = {s["step"]: s["seconds"] for s in result["steps"]}
    return {"namespace": ns, "replicas": replicas, "wall_s": r["wall_s"], "wait_ready_s": steps["wait-ready"],
            "beyond_readiness_s": round(r["wall_s"] - steps["wait-ready"], 3), "requests": len(reqs),
            "by_kind": breakdown(reqs), "steps": steps}


def run(runs: int = 1, sizes: tuple[int, ...] = (3, 30, 150), tag: str = "") -> dict:
    ensure_cluster()
    rec = Recorder("p7-scale", 3600, tag)
    results: dict[int, list[dict]] = {n: [] for n in sizes}
    with prefect_server(), tempfile.TemporaryDirectory(prefix="greenlight-bench-") as tmp:
        try:
            one_run(3, Path(tmp))  # warm-up, discarded (first flow run on the server)
            for i in range(runs):
                for n in sizes:
                    rec.note_load()
                    r = one_run(n, Path(tmp))
                    results[n].append(r)
                    say(f"run {i + 1}/{runs}, {n} replicas: {r['requests']} requests, {r['wall_s']:.2f} s wall, "
                        f"{r['beyond_readiness_s']:.2f} s beyond readiness ({r['wait_ready_s']:.2f} s wait-ready)")
                    delete_created()
        finally:
            delete_created()
    figures = {str(n): {k: summary([r[k] for r in rs]) for k in ("requests", "wall_s", "beyond_readiness_s",
                                                                 "wait_ready_s")} | {"by_kind": rs[-1]["by_kind"]}
               for n, rs in results.items()}
    base = figures[str(sizes[0])]["requests"]["median"]
    figures["requests_ratio_vs_smallest"] = {str(n): round(figures[str(n)]["requests"]["median"] / base, 2)
                                             for n in sizes}
    rec.save(figures=figures, runs=results)
    return figures
