"""Canary: how long each step takes beyond the new canary pods' own readiness.

Each run: a fresh namespace with the second tutorial's my-app-v1 (10 replicas, ready) behind my-app-service
(app label only), then `python -m prefect_greenlight.cli canary -n NS --service my-app-service --stable my-app-v1 --manifest
v2-canary-deployment.yaml --json` (default steps 10/30/50/100 % -> 1/3/5/10 canary pods, default HTTP analysis,
old stable deleted at the end).

A pod watch of the bench's own records, per canary pod, when it was first seen and when it first turned Ready.
Canary pods are grouped by creation order into the steps that created them (the plan's increments: 1, 2, 2, 5);
a group's readiness = last Ready - first seen. Step overhead = the step's timeline seconds - that readiness.
Checked: exit 0, outcome released, the Service's endpoints are only my-app-v2's 10 ready pods, my-app-v1 gone.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path

from bench import harness
from bench.given import serving, tutorial2_canary
from bench.harness import (
    PYTHON,
    TUTORIAL2,
    check,
    child_env,
    create_namespace,
    delete_namespaces,
    ensure_cluster,
    kube,
    prefect_server,
)
from bench.rawkube import RawKube
from bench.release import spawn
from bench.results import Recorder, median, say, summary

CANARY = "my-app-v2"


class PodWatch:
    """First-seen and first-Ready (perf_counter) of every pod in a namespace, from one list + watch."""

    def __init__(self, raw: RawKube, namespace: str):
        self.raw, self.path = raw, f"/api/v1/namespaces/{namespace}/pods"
        self.seen: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.created: dict[str, str] = {}
        self._resp = None

    def _note(self, pod: dict) -> None:
        name, now = pod["metadata"]["name"], time.perf_counter()
        self.seen.setdefault(name, now)
        self.created.setdefault(name, pod["metadata"]["creationTimestamp"])
        if any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or []):
            self.ready.setdefault(name, now)

    def start(self) -> "PodWatch":
        body = self.raw.get(self.path)
        for pod in body["items"]:
            self._note(pod)
        self._resp = self.raw.watch(self.path, body["metadata"]["resourceVersion"])
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        try:
            for line in self._resp.iter_lines():
                if line:
                    event = json.loads(line)
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._note(event["object"])
        except Exception:  # noqa: BLE001 - closed by stop()
            pass

    def stop(self) -> None:
        try:
            self._resp.raw.connection.sock.shutdown(2)
        except (AttributeError, OSError):
            pass
        self._resp.close()

    def canary_pods(self) -> list[str]:
        """Canary pods in the order the bench first saw them."""
        return sorted((n for n in self.seen if n.startswith(CANARY + "-")), key=lambda n: self.seen[n])


def one_run(raw: RawKube, workdir: Path) -> dict:
    ns = create_namespace("canary")
    try:
        tutorial2_canary(ns)
        argv = [PYTHON, "-m", "prefect_greenlight.cli", "canary", "-n", ns, "--service", "my-app-service", "--stable",
                "my-app-v1", "--manifest", str(TUTORIAL2 / "v2-canary-deployment.yaml"), "--json"]
        pods = PodWatch(raw, ns).start()
        try:
            r = spawn(argv, child_env(), harness.CODE, workdir)
            time.sleep(0.5)  # the last Ready events
        finally:
            pods.stop()
        check(r["rc"] == 0, f"canary in {ns} exited {r['rc']}:\n{r['stderr'][-3000:]}")
        result = json.loads(r["stdout"])
        check(result["outcome"] == "released", f"canary outcome {result['outcome']}")
        check(serving(ns, "my-app-service") == {CANARY: 10}, f"after the canary: {serving(ns, 'my-app-service')}")
        from prefect_greenlight.tasks.kube.client import read

        check(read(kube(), "Deployment", ns, "my-app-v1") is None, "old stable my-app-v1 still exists")
        return {"wall_s": r["wall_s"], "steps": result["steps"], "splits": result["splits"],
                **per_step(result, pods)}
    finally:
        delete_namespaces(ns)


def per_step(result: dict, pods: PodWatch) -> dict:
    """Each `step-N` row against the readiness of the canary pods it created."""
    canary = pods.canary_pods()
    out, taken, before = {}, 0, 0
    for split in result["splits"]:
        new = split["canary"] - before
        before = split["canary"]
        group = canary[taken:taken + new]
        taken += new
        check(len(group) == new and all(p in pods.ready for p in group),
              f"step {split['percent']} %: expected {new} new ready canary pods, saw {group}")
        readiness = max(pods.ready[p] for p in group) - min(pods.seen[p] for p in group) if group else 0.0
        step = next(s for s in result["steps"] if s["step"] == f"step-{split['percent']}")
        analysis = [s["seconds"] for s in result["steps"] if s["step"] == f"analysis-{split['percent']}"]
        out[f"{split['percent']}%"] = {"new_canary_pods": new, "step_s": step["seconds"],
                                       "pods_ready_s": round(readiness, 3),
                                       "beyond_readiness_s": round(step["seconds"] - readiness, 3),
                                       "analysis_s": analysis[0] if analysis else 0.0}
    return {"per_step": out}


def run(runs: int = 3, tag: str = "") -> dict:
    ensure_cluster()
    rec = Recorder("canary-steps", 1800, tag)
    raw = RawKube()
    results = []
    with prefect_server(), tempfile.TemporaryDirectory(prefix="greenlight-bench-") as tmp:
        say("warm-up canary (discarded)")
        one_run(raw, Path(tmp))
        for i in range(runs):
            rec.note_load()
            results.append(one_run(raw, Path(tmp)))
            say(f"canary {i + 1}/{runs}: {results[-1]['wall_s']:.2f} s; " + ", ".join(
                f"{k}: {v['step_s']:.2f} s step, {v['pods_ready_s']:.2f} s pods" for k, v in
                results[-1]["per_step"].items()))
    steps = list(results[0]["per_step"])
    figures = {"wall_s": summary([r["wall_s"] for r in results]),
               "per_step": {k: {f: summary([r["per_step"][k][f] for r in results])
                                for f in ("step_s", "pods_ready_s", "beyond_readiness_s", "analysis_s")}
                            for k in steps},
               "timeline_median_s": {s["step"]: round(median([next(x["seconds"] for x in r["steps"]
                                                                    if x["step"] == s["step"]) for r in results]), 3)
                                     for s in results[0]["steps"]},
               "runs": results}
    rec.save(**figures)
    return {k: v for k, v in figures.items() if k != "runs"}
