"""Preflight of a `traffic: gateway` canary with the cluster faked: what it reads, which permissions it asks
for (services create only when it must create the canary Service), and each refusal as BadInput naming it."""

from __future__ import annotations

import pytest

from prefect_greenlight.tasks.canary import gateway_preflight as gp
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.spec.canary import CanarySpec
from tests.unit.builders import deployment, service

STABLE_LABELS = {"app": "web", "greenlight.io/track": "stable"}


def route(accepted: str = "True", backend: str = "web") -> dict:
    return {"metadata": {"name": "web", "namespace": "default", "generation": 1},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": backend, "port": 80}]}]},
            "status": {"parents": [{"parentRef": {"name": "gw"}, "conditions": [
                {"type": "Accepted", "status": accepted, "observedGeneration": 1}]}]}}


@pytest.fixture
def cluster(monkeypatch):
    state = {"route": route(), "services": {}, "asked": []}
    monkeypatch.setattr(gp, "read", lambda kube, kind, ns, name: state["services"].get(name))
    monkeypatch.setattr(gp, "read_route", lambda kube, ns, name: state["route"] if name == "web" else None)
    monkeypatch.setattr(gp, "list_grants", lambda kube, ns: [])
    monkeypatch.setattr(gp, "require", lambda kube, ns, perms: state["asked"].extend((ns, str(p)) for p in perms))
    return state


def run(steps: list | None = None, stable_selector: dict | None = None, **gateway):
    spec = CanarySpec(service="web", stable="web-v1", image="web:2", traffic="gateway",
                      gateway={"route": "web", **gateway}, steps=steps or [5, 50, 100], analysis={"http": None})
    stable = deployment("web-v1", STABLE_LABELS, replicas=4)
    canary = deployment("web-v1-canary", {**STABLE_LABELS, "greenlight.io/track": "canary"})
    return gp.gateway_preflight(None, spec, service("web", stable_selector or STABLE_LABELS), stable, canary, 4)


def test_a_missing_canary_service_is_planned_and_its_create_permission_asked(cluster):
    plan = run()
    assert plan.create_service["spec"]["selector"] == {"app": "web", "greenlight.io/track": "canary"}
    assert [s.canary_pods for s in plan.states] == [1, 2, 4]
    assert ("default", "create services") in cluster["asked"]
    assert ("default", "patch httproutes.gateway.networking.k8s.io") in cluster["asked"]


def test_an_existing_canary_service_is_used_and_no_create_asked(cluster):
    cluster["services"]["web-canary"] = service("web-canary", {"app": "web", "greenlight.io/track": "canary"})
    assert run().create_service is None
    assert ("default", "create services") not in cluster["asked"]


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(route=None), "HTTPRoute 'web' not found in namespace 'default'"),
    (lambda c: c.update(route=route(accepted="False")), "no parent Gateway has accepted it"),
    (lambda c: c.update(route=route(backend="other")), "does not reference the stable Service 'web'"),
])
def test_the_route_is_refused_naming_the_problem(cluster, change, message):
    change(cluster)
    with pytest.raises(BadInput, match=message):
        run()


def test_a_stable_service_selecting_both_versions_is_refused(cluster):
    with pytest.raises(BadInput, match="also selects 'web-v1-canary'"):
        run(stable_selector={"app": "web"})


def test_a_cross_namespace_backend_needs_list_permission_there_and_a_grant(cluster):
    cluster["route"]["spec"]["rules"].append({"backendRefs": [{"name": "x", "namespace": "shared"}]})
    with pytest.raises(BadInput, match="no ReferenceGrant in 'shared' allows it"):
        run()
    assert ("shared", "list referencegrants.gateway.networking.k8s.io") in cluster["asked"]
