"""Gateway settle: from a traffic change until the measured share of the canary settles at its new value, by weight
through the Gateway API (the test cluster's Traefik) next to a replica-ratio step of the same share (kube-proxy).

Each run gets a fresh namespace with two Deployments of the first tutorial's image, `web` (stable) and
`web-canary`, labelled app=web; then one of each, alternating:

  weight     stable 10 ready and canary 2 ready; an HTTPRoute on the test Gateway with web 100 / web-canary 0;
             traffic (tests/e2e/traffic.py's agent inside the cluster's network namespace, RATE/s to the Gateway's
             listener, Host header) for LEAD_S; then ONE update of the route to 75 / 25 (the change).
  replicas   stable 12 ready, canary 0, one Service `web-all` selecting app=web; traffic to its ClusterIP (new
             connections: kube-proxy picks per connection); the change is a replica-ratio step to 25 % as
             greenlight's canary makes it: canary scaled to 3, once ready stable scaled to 9.

Figures relative to the change (when the API call returned):
  first canary    the first answer from web-canary
  settled         when the answers took the new share for good: the later of the first canary answer and the last
                  answer (on a new connection) from a pod that is gone at the end (the replica step's 3 removed
                  stable pods; none for a weight change, whose route switches at once)
  failed          requests without an answer or with a 5xx, over the whole run
Checked (BenchError otherwise): from `settled` to OBSERVE_S after the change the canary's share of answers is
25 % within the binomial tolerance (z = 4) the e2e checks use; no failed request; the agent never stopped early.

Addresses in 10.0.0.0/8 are used only inside the cluster's own network namespace.
"""

from __future__ import annotations

import time

from bench.harness import check, create_namespace, delete_namespaces, ensure_cluster, kube
from bench.results import Recorder, say, summary
from tests.cluster import launcher
from tests.e2e.gateway_traffic import GROUP, VERSION, route_manifest, through_gateway
from tests.e2e.helpers import deployment_manifest, ready_pods, service_manifest
from tests.e2e.traffic import TrafficCheck, TrafficResult

SHARE = 0.25
RATE = 200.0
LEAD_S = 5.0
OBSERVE_S = 20.0
Z = 4.0


def settled_at(result: TrafficResult, change: float, canary: str, gone: set[str], conn: str) -> float | None:
    """Seconds from `change` until the answers took the new share for good (see the module docstring)."""
    first = [r.t for r in result.answered(change, None) if r.deployment == canary]
    last_gone = [r.t for r in result.answered(change, None) if r.pod in gone and (conn == "all" or r.conn == conn)]
    if not first:
        return None
    return round(max([min(first), *last_gone]) - change, 3)


def first_answer(result: TrafficResult, change: float, deployment: str) -> float | None:
    times = [r.t for r in result.answered(change, None) if r.deployment == deployment]
    return round(min(times) - change, 3) if times else None


def _given(k, namespace: str, stable: int, canary: int, service: str | None) -> None:
    for name, replicas in (("web", stable), ("web-canary", canary)):
        k.apps.create_namespaced_deployment(namespace, deployment_manifest(name, replicas, labels={"app": "web"}))
        if service is None:
            k.core.create_namespaced_service(namespace, service_manifest(name, {"target": name}, port=80))
        if replicas:
            ready_pods(k, namespace, name, replicas, timeout=120)
    if service:
        k.core.create_namespaced_service(namespace, service_manifest(service, {"app": "web"}, port=80))


def weight_run(k, netns: str) -> dict:
    from kubernetes import client

    ns = create_namespace("gwsettle")
    custom = client.CustomObjectsApi(k.api)
    _given(k, ns, 10, 2, None)
    host = f"{ns}.bench"
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "httproutes",
                                           route_manifest(ns, "web", host, "web", "web-canary"))
    with through_gateway(netns, launcher.STATE.joinpath("kubeconfig").as_posix(), ns, "web", host, rate=RATE,
                         duration_s=LEAD_S + OBSERVE_S + 30) as traffic:
        time.sleep(LEAD_S)
        route = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "httproutes", "web")
        refs = route["spec"]["rules"][0]["backendRefs"]
        refs[0]["weight"], refs[1]["weight"] = 75, 25
        custom.replace_namespaced_custom_object(GROUP, VERSION, ns, "httproutes", "web", route)
        change = time.time()
        time.sleep(OBSERVE_S + 0.5)
    delete_namespaces(ns, wait_s=5)
    return _figures(traffic.result, change, "all", set())


def replica_run(k, netns: str) -> dict:
    ns = create_namespace("rrsettle")
    _given(k, ns, 12, 0, "web-all")
    with TrafficCheck(netns, launcher.STATE.joinpath("kubeconfig").as_posix(), ns, "web-all", rate=RATE,
                      duration_s=LEAD_S + OBSERVE_S + 90) as traffic:
        time.sleep(LEAD_S)
        k.apps.patch_namespaced_deployment_scale("web-canary", ns, {"spec": {"replicas": 3}})
        change = time.time()
        ready_pods(k, ns, "web-canary", 3, timeout=120)
        k.apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 9}})
        time.sleep(max(0.0, change + OBSERVE_S + 0.5 - time.time()))
    remaining = {p.metadata.name for p in k.core.list_namespaced_pod(ns).items if not p.metadata.deletion_timestamp}
    delete_namespaces(ns, wait_s=5)
    return _figures(traffic.result, change, "new", traffic.result.pods() - remaining)


def _figures(result: TrafficResult, change: float, conn: str, gone: set[str]) -> dict:
    check(not result.stopped_early, f"the traffic agent stopped early: {result.summary()}")
    settled = settled_at(result, change, "web-canary", gone, conn)
    check(settled is not None, f"web-canary never answered: {result.summary()}")
    share = result.share("web-canary", SHARE, change + settled, change + OBSERVE_S, conn=conn, z=Z)
    check(share.ok, f"after settling at {settled} s the share is off: {share.describe()}")
    failed = len(result.failed())
    check(failed == 0, f"{failed} failed requests: {result.summary()}")
    return {"first_canary_s": first_answer(result, change, "web-canary"), "settled_s": settled,
            "sent": result.sent(), "failed": failed}


def run(runs: int = 5, tag: str = "") -> dict:
    ensure_cluster()
    netns = launcher.status()["netns"]
    k = kube()
    rec = Recorder("gateway-settle", 3600, tag)
    out: dict[str, list[dict]] = {"weight": [], "replicas": []}
    for i in range(runs):
        for mode, one in (("weight", weight_run), ("replicas", replica_run)):
            figures = one(k, netns)
            out[mode].append({**figures, "load": rec.note_load()})
            say(f"{mode} run {i + 1}/{runs}: {figures}")
    result = {mode: {"first_canary_s": summary([r["first_canary_s"] for r in rows]),
                     "settled_s": summary([r["settled_s"] for r in rows]), "runs": rows}
              for mode, rows in out.items()}
    rec.save(**result)
    return result
