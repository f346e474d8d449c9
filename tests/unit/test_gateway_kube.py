"""tasks/kube/gateway.py with the apiserver faked: a route already at the asked rules is not applied again; a 409
(the route changed since it was read) is re-read and re-decided, a bounded number of times, then a retryable
error; the wait fails with counts when the parents never accept the applied generation. Also: the spec example of
the docs page parses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from kubernetes.client.rest import ApiException

from prefect_greenlight.tasks.decisions.gateway import AT_REST, GatewayState
from prefect_greenlight.tasks.errors import GuardFailed, PermanentError, TemporaryError
from prefect_greenlight.tasks.kube import gateway as kg
from prefect_greenlight.tasks.spec import parse_spec
from prefect_greenlight.tasks.spec.canary import CanarySpec


def route(rv: str = "1", generation: int = 1, weight: int | None = None) -> dict:
    ref = {"name": "web", "port": 80, **({"weight": weight} if weight is not None else {})}
    return {"metadata": {"name": "web", "namespace": "ns", "resourceVersion": rv, "generation": generation},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [ref]}]},
            "status": {"parents": [{"parentRef": {"name": "gw"}, "conditions": [
                {"type": t, "status": "True", "observedGeneration": 1} for t in ("Accepted", "ResolvedRefs")]}]}}


def conflict() -> GuardFailed:
    err = GuardFailed("apply HTTPRoute ns/web: HTTP 409: the object has been modified")
    err.__cause__ = ApiException(status=409)
    return err


def test_rules_already_as_asked_are_not_applied(monkeypatch):
    monkeypatch.setattr(kg, "read_route", lambda kube, ns, name: route(weight=100))
    monkeypatch.setattr(kg, "_apply_rules", lambda *a: pytest.fail("applied again"))
    assert kg.apply_state(None, "ns", "web", 0, "web", "web-canary", AT_REST) == (1, False)


def test_a_conflict_is_re_read_and_applied_with_the_new_resource_version(monkeypatch):
    reads, sent = iter([route("1"), route("2")]), []

    def apply(kube, r, rules):
        sent.append(r["metadata"]["resourceVersion"])
        if len(sent) == 1:
            raise conflict()
        return {"metadata": {"generation": 2}}

    monkeypatch.setattr(kg, "read_route", lambda kube, ns, name: next(reads))
    monkeypatch.setattr(kg, "_apply_rules", apply)
    assert kg.apply_state(None, "ns", "web", 0, "web", "web-canary", GatewayState(5, 1)) == (2, True)
    assert sent == ["1", "2"]


def test_conflicts_without_end_are_a_retryable_error(monkeypatch):
    monkeypatch.setattr(kg, "read_route", lambda kube, ns, name: route())
    monkeypatch.setattr(kg, "_apply_rules", lambda *a: (_ for _ in ()).throw(conflict()))
    with pytest.raises(TemporaryError, match="changed 5 times") as err:
        kg.apply_state(None, "ns", "web", 0, "web", "web-canary", GatewayState(5, 1))
    assert err.value.retryable


def test_the_wait_names_what_the_parents_report_at_the_deadline(monkeypatch):
    monkeypatch.setattr(kg, "read_route", lambda kube, ns, name: route(generation=2))
    monkeypatch.setattr(kg.time, "sleep", lambda s: None)
    with pytest.raises(PermanentError, match=r"not accepted at generation 2 within 0 s: 0 of 1 parent\(s\) "
                                             r"observed generation 2"):
        kg.wait_route(None, "ns", "web", 2, 0)


def test_the_docs_example_parses():
    page = (Path(__file__).parents[2] / "docs" / "how-to" / "canary-gateway.md").read_text()
    example = next(b for b in re.findall(r"```yaml\n(.*?)```", page, re.S) if "steps:" in b)
    s = parse_spec(CanarySpec, yaml.safe_load(example))
    assert s.traffic.value == "gateway" and s.weights == [0, 1, 5, 50, 100]


def test_the_example_passes_the_pure_checks():
    """examples/gateway: the spec parses; its Services select one version each; its route is fine once accepted."""
    from prefect_greenlight.tasks.canary.preflight import derive_canary
    from prefect_greenlight.tasks.decisions.gateway import canary_service_manifest, route_problems, service_problems

    root = Path(__file__).parents[2] / "examples" / "gateway"
    spec = parse_spec(CanarySpec, yaml.safe_load((root / "canary.yaml").read_text()))
    docs = {d["kind"]: d for d in yaml.safe_load_all((root / "stable.yaml").read_text())}
    stable, svc, rt = docs["Deployment"], docs["Service"], docs["HTTPRoute"]
    canary = derive_canary(stable, spec.image, spec.canary_name_or_default, None)
    assert service_problems(svc, canary_service_manifest(svc, spec.canary_service), stable, canary) == []
    rt["metadata"]["namespace"] = "default"
    rt["status"] = {"parents": [{"parentRef": {"name": "traefik-gateway"},
                                 "conditions": [{"type": "Accepted", "status": "True"}]}]}
    assert route_problems(rt, spec.gateway.rule, spec.service, spec.canary_service, {}) == []
