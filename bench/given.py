"""Starting points (the tutorials' manifests, applied unchanged with the built kubectl, as a tutorial reader
would) and the read-only checks that say whether a measured release really happened."""

from __future__ import annotations

import time

from bench.harness import TUTORIAL1, TUTORIAL2, check, kube, kubectl

SERVICE1 = "production-svc"


def wait_ready(namespace: str, name: str, replicas: int, timeout_s: float = 120) -> None:
    from prefect_greenlight.tasks.kube.client import read

    k = kube()
    deadline = time.monotonic() + timeout_s
    while True:
        d = read(k, "Deployment", namespace, name) or {}
        st = d.get("status") or {}
        if d and st.get("observedGeneration", 0) >= d["metadata"]["generation"] and \
                st.get("readyReplicas", 0) == replicas == st.get("updatedReplicas", 0) == st.get("replicas", 0):
            return
        check(time.monotonic() < deadline, f"{namespace}/{name} not ready within {timeout_s:.0f} s: {st}")
        time.sleep(0.2)


def tutorial1(namespace: str, green_too: bool = False) -> None:
    """blue-dep (3 replicas, ready) behind production-svc; with `green_too` also green-dep, ready, unselected."""
    files = [TUTORIAL1 / "blue-dep.yaml", TUTORIAL1 / "production-svc-blue.yaml"]
    if green_too:
        files.append(TUTORIAL1 / "green-dep.yaml")
    kubectl(namespace, "apply", *(a for f in files for a in ("-f", str(f))))
    wait_ready(namespace, "blue-dep", 3)
    if green_too:
        wait_ready(namespace, "green-dep", 3)
    wait_serving(namespace, SERVICE1, "blue-dep", 3)


def tutorial2_canary(namespace: str) -> None:
    """The second tutorial's canary starting point: my-app-v1 (10 replicas) behind my-app-service (app label)."""
    kubectl(namespace, "apply", "-f", str(TUTORIAL2 / "v1-deployment.yaml"), "-f",
            str(TUTORIAL2 / "canary-service.yaml"))
    wait_ready(namespace, "my-app-v1", 10)


def serving(namespace: str, service: str) -> dict[str, int]:
    """Ready endpoints of the Service per owning Deployment (owner references, as greenlight attributes them)."""
    from prefect_greenlight.tasks.decisions.endpoints import deployment_of_pods, tally
    from prefect_greenlight.tasks.kube.client import list_objects

    k = kube()
    slices = list_objects(k, "EndpointSlice", namespace, f"kubernetes.io/service-name={service}")
    owners = deployment_of_pods(list_objects(k, "Pod", namespace), list_objects(k, "ReplicaSet", namespace),
                                list_objects(k, "Deployment", namespace))
    return tally(slices, owners).ready


def wait_serving(namespace: str, service: str, deployment: str, ready: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while (now := serving(namespace, service)) != {deployment: ready}:
        check(time.monotonic() < deadline, f"Service {service} serves {now}, want {{{deployment!r}: {ready}}}")
        time.sleep(0.1)


def selector(namespace: str, service: str) -> dict:
    from prefect_greenlight.tasks.kube.client import read

    return ((read(kube(), "Service", namespace, service) or {}).get("spec") or {}).get("selector") or {}


def assert_released_blue_green(namespace: str, blue_kept: bool = True) -> None:
    """The first tutorial released: the Service selects green-dep and only its 3 ready pods are behind it;
    with cleanup `keep`, blue is still there with its 3 pods."""
    check(selector(namespace, SERVICE1) == {"target": "green-dep"},
          f"{namespace}: selector is {selector(namespace, SERVICE1)}, not green")
    wait_serving(namespace, SERVICE1, "green-dep", 3, timeout_s=15)
    if blue_kept:
        wait_ready(namespace, "blue-dep", 3, timeout_s=5)
