"""P3w: a release as `prefect deployment run` (the UI's Run button: POST /deployments/{id}/create_flow_run) ->
Completed, through the greenlight worker, vs the tutorial script via kubectl on the same cluster; Prefect's process
worker on a process pool as the reference (what the issue measured: 12.7 s, 7.2 s of it Scheduled -> Pending).

The workers are started once and warmed by one discarded run each; then every round runs the four kinds in a
rotating order, each in a fresh namespace with the first tutorial's blue ready:

  greenlight-worker  the blue-green deployment on pool `greenlight` (type greenlight), as users get it: pick-up
                     on events (worker/listening.py), the default 2 s poll as the fallback
  greenlight-poll    the same deployment on a second greenlight pool, its worker without pick-up on events
                     (GREENLIGHT_WORKER_PICKUP_EVENTS=0): the 2 s poll alone, as before issue 25's pick-up
  process-worker     the same deployment copied to a process pool, `prefect worker start --type process`
                     with Prefect's default 10 s poll (PREFECT_WORKER_QUERY_SECONDS unset)
  script             bench/blue-green-deploy.sh blue green with the built kubectl (as P3)

Wall of a deployment run: create_flow_run POST -> Completed first seen (GET /flow_runs/{id} every 0.1 s). The
run's state history gives created -> Pending, Pending -> Running, Running -> Completed. Every release is checked
(selector on green-dep, only green's 3 ready pods behind the Service, blue kept).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench.given import assert_released_blue_green, tutorial1
from bench.harness import KUBECONFIG, KUBECTL, check, create_namespace, delete_created, ensure_cluster, prefect_server
from bench.release import SCRIPT, spawn
from bench.results import Recorder, ratio, say, summary
from bench.workerbench import (
    GREENLIGHT_POOL,
    POLL_ONLY_POOL,
    PROCESS_POOL,
    WorkerProc,
    breakdown,
    create_run,
    deploy,
    parameters,
    wait_final,
)

KINDS = ("greenlight-worker", "greenlight-poll", "process-worker", "script")
POOLS = {"greenlight-worker": GREENLIGHT_POOL, "greenlight-poll": POLL_ONLY_POOL, "process-worker": PROCESS_POOL}


def deployment_run(api: str, deployment_id: str, namespace: str) -> dict:
    t0 = time.perf_counter()
    run_id = create_run(api, deployment_id, parameters(namespace))
    state, at = wait_final(api, [run_id], timeout_s=300)[run_id]
    check(state == "COMPLETED", f"deployment run {run_id} in {namespace} ended {state}")
    return {"wall_s": at - t0, "flow_run_id": run_id, **breakdown(api, run_id)}


def script_run(namespace: str, workdir: Path) -> dict:
    env = {**os.environ, "KUBECTL": KUBECTL, "KUBECONFIG": KUBECONFIG, "NAMESPACE": namespace,
           "KUBECACHEDIR": str(workdir / "kubectl-cache")}
    r = spawn(["bash", str(SCRIPT), "blue", "green"], env, Path(SCRIPT).parent.parent, workdir)
    check(r["rc"] == 0, f"script in {namespace} exited {r['rc']}:\n{r['stderr'][-2000:]}")
    return {"wall_s": r["wall_s"], "maxrss_mb": r["maxrss_mb"]}


def one(kind: str, api: str, ids: dict[str, str], workdir: Path) -> dict:
    ns = create_namespace(f"p3w-{kind[:2]}")
    tutorial1(ns)
    if kind == "script":
        r = script_run(ns, workdir)
    else:
        r = deployment_run(api, ids[POOLS[kind]], ns)
    assert_released_blue_green(ns)
    return {"namespace": ns, **r}


def _figures(results: dict[str, list[dict]]) -> dict:
    keys = ("wall_s", "created_to_pending_s", "pending_to_running_s", "running_to_final_s")
    out = {k: {key: summary([r[key] for r in results[k]]) for key in keys if key in results[k][0]} for k in KINDS}
    g, gp, p, s = (out[k]["wall_s"]["median"] for k in KINDS)
    out["ratios"] = {"greenlight_worker_vs_script": ratio(g, s), "greenlight_poll_vs_script": ratio(gp, s),
                     "process_worker_vs_script": ratio(p, s), "greenlight_worker_vs_process_worker": ratio(g, p)}
    out["targets"] = {"p3w_le_1_2x": out["ratios"]["greenlight_worker_vs_script"] <= 1.2}
    return out


def run(runs: int = 5, tag: str = "") -> dict:
    ensure_cluster()
    rec = Recorder("p3w-deployment-run", 2400, tag)
    results: dict[str, list[dict]] = {k: [] for k in KINDS}
    with prefect_server() as server, tempfile.TemporaryDirectory(prefix="greenlight-bench-") as tmp:
        workdir = Path(tmp)
        ids = deploy(server.url, process_pool=True, poll_only_pool=True)
        with WorkerProc("greenlight", GREENLIGHT_POOL, 20, workdir / "gl-worker.log") as gw, \
                WorkerProc("greenlight", POLL_ONLY_POOL, 20, workdir / "gl-poll-worker.log",
                           GREENLIGHT_WORKER_PICKUP_EVENTS="0") as gpw, \
                WorkerProc("process", PROCESS_POOL, 20, workdir / "process-worker.log") as pw:
            try:
                warm = {}
                for kind in KINDS:
                    say(f"warm-up {kind} (discarded: workers' first run imports the flows, kubectl's cache)")
                    warm[kind] = one(kind, server.url, ids, workdir)
                for i in range(runs):
                    order = KINDS[i % len(KINDS):] + KINDS[:i % len(KINDS)]
                    for kind in order:
                        load_now = rec.note_load()
                        r = one(kind, server.url, ids, workdir)
                        r["load"] = load_now
                        results[kind].append(r)
                        extra = "" if kind == "script" else (
                            f" (created->Pending {r['created_to_pending_s']:.2f}, Pending->Running "
                            f"{r['pending_to_running_s']:.2f}, Running->Completed {r['running_to_final_s']:.2f})")
                        say(f"run {i + 1}/{runs} {kind}: {r['wall_s']:.2f} s{extra}")
                worker_rss = {"greenlight_worker_peak_rss_mb": round(gw.peak_rss_mb(), 1),
                              "greenlight_poll_worker_peak_rss_mb": round(gpw.peak_rss_mb(), 1),
                              "process_worker_peak_rss_mb": round(pw.peak_rss_mb(), 1)}
                pickup_log = [line for line in gw.log_path.read_text(errors="replace").splitlines()
                              if "pick-up on events" in line]
            except Exception:
                print(gw.tail(), gpw.tail(), pw.tail(), sep="\n---\n")
                raise
            finally:
                delete_created()
    figures = {"prefect_api": server.url, "warm_up": warm, **_figures(results), **worker_rss,
               "greenlight_worker_pickup_log": pickup_log[-20:], "runs": results}
    rec.save(**figures)
    return {k: v for k, v in figures.items() if k not in ("runs", "warm_up")}
