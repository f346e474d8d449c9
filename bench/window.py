"""P2w: `greenlight rollback` inside a rollback window (issue 24), both versions warm, against a bare client's
floor on the same Service, measured side by side in one run.

Given the first tutorial released to green with `--rollback-window` (the CLI, the bench's own Prefect server
holding prefect.yaml's window-cleanup deployment, so the window's end is a Scheduled flow run there), each round:

  floor       a bare client (requests): a watch on the Service's EndpointSlices open BEFORE the clock starts;
              one merge PATCH of the selector to blue -> until the slices list only blue's 3 ready pods; then the
              same back to green (not timed)
  greenlight  `greenlight rollback --to blue-dep --json` (green -> blue), then `--to green-dep` (blue -> green):
              the CLI's own `patch_to_verified_s` (its guarded selector PATCH sent -> its EndpointSlice check
              passed), and restore + wait-ready + switch + verify-endpoints from its step timings

Checked, or the bench fails: each rollback ends `rolled-back` on the version asked for, its restore found the
target still at 3 replicas, and not one pod was created during the rounds (a selector switch only).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from bench.given import SERVICE1, selector, tutorial1, wait_serving
from bench.harness import (
    KUBECONFIG,
    PYTHON,
    TUTORIAL1,
    check,
    child_env,
    create_namespace,
    delete_namespaces,
    ensure_cluster,
    kube,
    prefect_server,
)
from bench.rawkube import RawKube, SliceWatch
from bench.release import spawn
from bench.results import Recorder, ratio, say, summary
from bench.workerbench import GREENLIGHT_POOL, prefect_cli

pc = time.perf_counter
STEPS = ("restore", "wait-ready", "switch", "verify-endpoints")


def _greenlight(workdir: Path, *args: str) -> dict:
    """One CLI command to completion; its --json output (the bench fails on a non-zero exit)."""
    out = spawn([PYTHON, "-m", "prefect_greenlight.cli", *args, "--json", "--kubeconfig", KUBECONFIG],
                child_env(), workdir, workdir)
    check(out["rc"] == 0, f"greenlight {' '.join(args)} exited {out['rc']}:\n{out['stderr'][-3000:]}")
    return json.loads(out["stdout"])


def _released_with_window(namespace: str, workdir: Path, window_s: float) -> None:
    _greenlight(workdir, "blue-green", "-n", namespace, "--service", SERVICE1, "--manifest",
                str(TUTORIAL1 / "green-dep.yaml"), "--rollback-window", str(window_s))
    check(selector(namespace, SERVICE1) == {"target": "green-dep"}, "the release did not switch to green")
    wait_serving(namespace, SERVICE1, "green-dep", 3)


def _floor_round(raw: RawKube, watch: SliceWatch, namespace: str) -> float:
    path = f"/api/v1/namespaces/{namespace}/services/{SERVICE1}"
    t0 = pc()
    raw.merge_patch(path, {"spec": {"selector": {"target": "blue-dep"}}})
    took = watch.wait("blue-dep", 3) - t0
    raw.merge_patch(path, {"spec": {"selector": {"target": "green-dep"}}})
    watch.wait("green-dep", 3)
    return took


def _rollback(namespace: str, workdir: Path, to: str) -> dict:
    args = ["rollback", "-n", namespace, "--service", SERVICE1, "--cleanup", "keep"]
    result = _greenlight(workdir, *args, "--to", to)
    check(result["outcome"] == "rolled-back" and result["live_deployment"] == to, f"rollback to {to}: {result}")
    steps = {s["step"]: s for s in result["steps"]}
    check(steps["restore"]["detail"] == f"{to} still has 3 replicas", f"restore: {steps['restore']}")
    return {"to": to, "patch_to_verified_s": result["patch_to_verified_s"],
            "steps_s": sum(steps[k]["seconds"] for k in STEPS)}


def _pod_uids(namespace: str) -> set[str]:
    return {p.metadata.uid for p in kube().core.list_namespaced_pod(namespace).items}


def run(runs: int = 5, window_s: float = 900, tag: str = "") -> dict:
    rec = Recorder("p2w-window", 1200, tag)
    ensure_cluster()
    ns = create_namespace("window")
    workdir = Path(tempfile.mkdtemp(prefix="greenlight-bench-window-"))
    try:
        tutorial1(ns)
        with prefect_server():
            prefect_cli("work-pool", "create", GREENLIGHT_POOL, "--type", "greenlight", "--overwrite")
            prefect_cli("--no-prompt", "deploy", "--name", "window-cleanup")
            _released_with_window(ns, workdir, window_s)
            pods_before = _pod_uids(ns)
            floor, greenlight = [], []
            raw = RawKube(KUBECONFIG)
            with SliceWatch(raw, ns, SERVICE1) as watch:
                say("warm-up (discarded): a floor round, a rollback and forward again")
                _floor_round(raw, watch, ns)
                _rollback(ns, workdir, "blue-dep")
                _rollback(ns, workdir, "green-dep")
                for i in range(runs):
                    floor.append(_floor_round(raw, watch, ns))
                    greenlight += [_rollback(ns, workdir, "blue-dep"), _rollback(ns, workdir, "green-dep")]
                    back, forward = (g["patch_to_verified_s"] for g in greenlight[-2:])
                    say(f"round {i + 1}/{runs}: floor {floor[-1]:.3f} s, greenlight rollback {back:.3f} s, "
                        f"forward {forward:.3f} s")
                    rec.note_load()
            created = _pod_uids(ns) - pods_before
            check(not created, f"the warm switches created {len(created)} pod(s): not a selector switch only")
    finally:
        delete_namespaces(ns)
    gl = summary([g["patch_to_verified_s"] for g in greenlight])
    fl = summary(floor)
    figures = {"p2w": {"greenlight_patch_to_verified_s": gl, "floor_s": fl,
                       "greenlight_steps_s": summary([g["steps_s"] for g in greenlight]),
                       "ratio_vs_floor": ratio(gl["median"], fl["median"]), "goal": "<= 2x the floor",
                       "switches": len(greenlight), "floor_rounds": len(floor), "window_s": window_s}}
    path = rec.save(**figures)
    return {**figures, "results": str(path)}
