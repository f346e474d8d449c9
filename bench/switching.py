"""P1 switch latency and P2 rollback latency, greenlight vs a bare client's floor, on one namespace holding the
first tutorial with blue AND green ready (the Service on blue).

One round, repeated:
P1 runs from greenlight's selector PATCH being issued (prefect_greenlight.tasks.bluegreen.switch.json_patch, timed by a wrapper in this process)
to verify_endpoints returning; P2 from "failure detected" to the switch back's verification returning.

  greenlight in a flow run   switch_traffic + verify_endpoints as Prefect tasks (P1: the real `switch` and
                             `verify-endpoints` steps), then "failure detected" -> say() -> UndoStack.unwind()
                             whose one step is the switch back the switch step pushed (P2)
  greenlight, no Prefect     the same task bodies (`.fn`) and unwind, outside any flow run
  floor                      requests: a watch on the Service's EndpointSlices is open BEFORE the clock starts;
                             clock -> one merge PATCH of the selector -> events until only green's 3 pods are
                             ready (P1); the same back to blue (P2)

An independent EndpointSlice watch (the observer) records when the slices really became green-only / blue-only,
so greenlight's time splits into "the cluster got there" and "greenlight noticed".
"""

from __future__ import annotations

import time

import yaml

from bench.given import SERVICE1, tutorial1, wait_serving
from bench.harness import (
    KUBECONFIG,
    TUTORIAL1,
    check,
    create_namespace,
    delete_namespaces,
    ensure_cluster,
    prefect_server,
)
from bench.rawkube import RawKube, SliceWatch
from bench.results import Recorder, ratio, say, summary

_OBSERVER: dict[str, SliceWatch] = {}
_PATCHED_AT: list[float] = []
pc = time.perf_counter


def _time_patches() -> None:
    """Record when greenlight issues the selector PATCH (prefect_greenlight.tasks.bluegreen.switch.json_patch, wrapped in this process only),
    so P1/P2 can start exactly there as the issue defines them."""
    import prefect_greenlight.tasks.bluegreen.switch as sw

    if getattr(sw.json_patch, "bench_timed", False):
        return
    original = sw.json_patch

    def timed(*args, **kwargs):
        _PATCHED_AT.append(pc())
        return original(*args, **kwargs)

    timed.bench_timed = True  # type: ignore[attr-defined]
    sw.json_patch = timed


def _plan(kube, namespace: str):
    from prefect_greenlight.tasks.bluegreen.preflight import preflight
    from prefect_greenlight.tasks.spec import BlueGreenSpec

    manifest = yaml.safe_load((TUTORIAL1 / "green-dep.yaml").read_text())
    spec = BlueGreenSpec(namespace=namespace, service=SERVICE1, manifest=manifest, cleanup={"mode": "keep"})
    plan = preflight(kube, spec, f"bench-{int(time.time())}")
    check(plan.colors.blue == "blue-dep" and plan.colors.green == "green-dep", f"unexpected plan {plan.colors}")
    return plan


def _round(kube, plan, observer: SliceWatch, as_tasks: bool) -> dict:
    """Switch to green and verify, then the rollback path back to blue; every figure from the real functions."""
    from prefect_greenlight.tasks.bluegreen.switch import (
        release_endpoints,
        switch_back,
        switch_traffic,
        verify_endpoints,
    )
    from prefect_greenlight.tasks.engine.undo import UndoStack
    from prefect_greenlight.tasks.record.report import say as gl_say

    sw = switch_traffic if as_tasks else switch_traffic.fn
    ver = verify_endpoints if as_tasks else verify_endpoints.fn
    _time_patches()
    undo = UndoStack()
    with release_endpoints(kube, plan) as endpoints:  # as flows/blue_green.py: one informer, watching before the PATCH
        t0 = pc()
        undo.push("switch back", lambda: switch_back(kube, plan, endpoints))  # as the engine does, at the step's start
        sw(kube, plan, "", endpoints)
        t1 = pc()
        patch1 = _PATCHED_AT[-1]
        check(t0 < patch1 < t1, "the switch issued no selector PATCH")
        ver(kube, plan, endpoints)
        t2 = pc()
    observer.wait("green-dep", 3, timeout_s=5)  # greenlight said green-only: the observer must agree
    green_at = observer.first_only("green-dep", 3, after=t0)
    t3 = pc()  # failure detected
    gl_say(f"release failed during post-switch: bench-injected failure; rolling back {len(undo)} change(s)")
    outcomes = undo.unwind()
    t4 = pc()
    patch2 = _PATCHED_AT[-1]
    check(t3 < patch2 < t4, "the switch back issued no selector PATCH")
    check(len(outcomes) == 1 and outcomes[0].ok, f"switch back failed: {outcomes}")
    observer.wait("blue-dep", 3, timeout_s=5)
    blue_at = observer.first_only("blue-dep", 3, after=t3)
    check(green_at and blue_at, "observer missed a green-only or blue-only state")
    return {"switch_s": t1 - t0, "verify_s": t2 - t1, "steps_s": t2 - t0, "before_patch_s": patch1 - t0,
            "p1_s": t2 - patch1, "p1_cluster_s": green_at - patch1,
            "p2_s": t4 - t3, "p2_before_patch_s": patch2 - t3, "p2_from_patch_s": t4 - patch2,
            "p2_cluster_s": blue_at - patch2}


_FLOW: list = []


def _flow_round(namespace: str) -> dict:
    """One round inside a real flow run (defined lazily: Prefect must be imported after the server is up)."""
    if not _FLOW:
        from prefect import flow

        from prefect_greenlight.tasks.kube.client import connect

        @flow(name="bench-switch-round", log_prints=True)
        def bench_switch_round(namespace: str) -> dict:
            kube = connect(KUBECONFIG)
            return _round(kube, _plan(kube, namespace), _OBSERVER[namespace], as_tasks=True)

        _FLOW.append(bench_switch_round)
    return _FLOW[0](namespace)


def _floor_round(raw: RawKube, namespace: str, observer: SliceWatch) -> dict:
    path = f"/api/v1/namespaces/{namespace}/services/{SERVICE1}"
    with SliceWatch(raw, namespace, SERVICE1) as w:
        t0 = pc()
        raw.merge_patch(path, {"spec": {"selector": {"target": "green-dep"}}})
        t1 = w.wait("green-dep", 3)
        t2 = pc()
        raw.merge_patch(path, {"spec": {"selector": {"target": "blue-dep"}}})
        t3 = w.wait("blue-dep", 3)
    observer.wait("blue-dep", 3, timeout_s=5)  # the observer's own connection may be a moment behind
    check(observer.first_only("green-dep", 3, after=t0) and observer.first_only("blue-dep", 3, after=t2),
          "observer disagrees with the floor's watch")
    return {"p1_s": t1 - t0, "p2_s": t3 - t2}


P1_KEYS = ("p1_s", "p1_cluster_s", "before_patch_s", "switch_s", "verify_s", "steps_s")
P2_KEYS = ("p2_s", "p2_before_patch_s", "p2_from_patch_s", "p2_cluster_s")


def run(runs: int = 7, tag: str = "") -> dict:
    ensure_cluster()
    rec = Recorder("p1p2-switch", 900, tag)
    with prefect_server() as server:
        ns = create_namespace("switch")
        try:
            tutorial1(ns, green_too=True)
            from prefect_greenlight.tasks.kube.client import connect

            kube = connect(KUBECONFIG)
            raw = RawKube()
            gl_flow, gl_fn, floor = [], [], []
            with SliceWatch(raw, ns, SERVICE1) as observer:
                _OBSERVER[ns] = observer
                say("warm-up round (discarded): first flow run, first connections")
                _flow_round(ns), _round(kube, _plan(kube, ns), observer, False), _floor_round(raw, ns, observer)
                for i in range(runs):
                    gl_flow.append(_flow_round(ns))
                    wait_serving(ns, SERVICE1, "blue-dep", 3)
                    gl_fn.append(_round(kube, _plan(kube, ns), observer, False))
                    wait_serving(ns, SERVICE1, "blue-dep", 3)
                    floor.append(_floor_round(raw, ns, observer))
                    wait_serving(ns, SERVICE1, "blue-dep", 3)
                    say(f"round {i + 1}/{runs}: P1 flow {gl_flow[-1]['p1_s']:.3f} s, no-Prefect "
                        f"{gl_fn[-1]['p1_s']:.3f} s, floor {floor[-1]['p1_s']:.3f} s; P2 flow {gl_flow[-1]['p2_s']:.3f}"
                        f" s, no-Prefect {gl_fn[-1]['p2_s']:.3f} s, floor {floor[-1]['p2_s']:.3f} s "
                        f"(load {rec.note_load()})")
        finally:
            delete_namespaces(ns)

    def col(rows: list[dict], key: str) -> dict:
        return summary([r[key] for r in rows])

    figures = {
        "prefect_api": server.url,
        "p1": {"greenlight_flow": {k: col(gl_flow, k) for k in P1_KEYS},
               "greenlight_no_prefect": {k: col(gl_fn, k) for k in P1_KEYS},
               "floor": col(floor, "p1_s")},
        "p2": {"greenlight_flow": {k: col(gl_flow, k) for k in P2_KEYS},
               "greenlight_no_prefect": {k: col(gl_fn, k) for k in P2_KEYS},
               "floor": col(floor, "p2_s")},
    }
    f1, f2 = figures["p1"]["floor"]["median"], figures["p2"]["floor"]["median"]
    figures["p1"]["ratio_flow_vs_floor"] = ratio(figures["p1"]["greenlight_flow"]["p1_s"]["median"], f1)
    figures["p1"]["ratio_no_prefect_vs_floor"] = ratio(figures["p1"]["greenlight_no_prefect"]["p1_s"]["median"], f1)
    figures["p2"]["ratio_flow_vs_floor"] = ratio(figures["p2"]["greenlight_flow"]["p2_s"]["median"], f2)
    figures["p2"]["ratio_no_prefect_vs_floor"] = ratio(figures["p2"]["greenlight_no_prefect"]["p2_s"]["median"], f2)
    rec.save(**figures)
    return figures
