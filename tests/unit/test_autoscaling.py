"""The HPA follows the live Deployment (tasks/decisions/autoscaling.py): carried over to green with the same
spec, minReplicas held at blue's count, recorded exactly, refused when ambiguous."""

from __future__ import annotations

from prefect_greenlight.tasks.decisions.autoscaling import (
    HELD_MIN,
    MANAGED_BY,
    autoscalers_of,
    carried_hpa,
    hpa_problems,
    portable_hpa,
    release_hold_ops,
    target_of,
)


def _hpa(name, target, lo=2, hi=10, kind="Deployment", labels=None, **meta):
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": "ns", "uid": "u", "resourceVersion": "7",
                         "creationTimestamp": "t", "labels": labels or {"team": "web"},
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "note": "x"},
                         **meta},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
                     "minReplicas": lo, "maxReplicas": hi,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                         "type": "Utilization", "averageUtilization": 60}}}],
                     "behavior": {"scaleDown": {"stabilizationWindowSeconds": 120}}},
            "status": {"currentReplicas": 4}}


def test_target_of_reads_deployments_only():
    assert target_of(_hpa("a", "blue-dep")) == "blue-dep"
    assert target_of(_hpa("a", "web", kind="StatefulSet")) is None
    assert [h["metadata"]["name"] for h in autoscalers_of([_hpa("b", "x"), _hpa("a", "x"), _hpa("c", "y")], "x")] \
        == ["a", "b"]


def test_portable_hpa_keeps_spec_and_own_metadata_drops_server_fields_and_status():
    p = portable_hpa(_hpa("web", "blue-dep"))
    assert p["spec"] == _hpa("web", "blue-dep")["spec"] and "status" not in p
    assert p["metadata"] == {"name": "web", "labels": {"team": "web"}, "annotations": {"note": "x"}}


def test_carried_hpa_has_the_same_metrics_and_behavior_its_own_name_and_greenlights_labels():
    g = carried_hpa(_hpa("web", "blue-dep", lo=2), "green-dep", "rel-1", hold_at=2)
    assert g["metadata"]["name"] == "green-dep"
    assert g["metadata"]["labels"] == {"team": "web", MANAGED_BY: "greenlight", "greenlight.io/release-id": "rel-1"}
    assert g["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "green-dep"}
    assert g["spec"]["metrics"] == _hpa("w", "b")["spec"]["metrics"]
    assert g["spec"]["behavior"] == _hpa("w", "b")["spec"]["behavior"]
    assert g["spec"]["minReplicas"] == 2 and HELD_MIN not in g["metadata"]["annotations"]


def test_carried_hpa_holds_min_at_blues_count_within_max_and_remembers_its_own():
    held = carried_hpa(_hpa("web", "blue-dep", lo=2, hi=10), "green-dep", "r", hold_at=6)
    assert held["spec"]["minReplicas"] == 6 and held["metadata"]["annotations"][HELD_MIN] == "2"
    capped = carried_hpa(_hpa("web", "blue-dep", lo=2, hi=5), "green-dep", "r", hold_at=8)
    assert capped["spec"]["minReplicas"] == 5


def test_release_hold_gives_the_hpa_its_own_min_back_guarded_by_resource_version():
    held = {**carried_hpa(_hpa("web", "b", lo=2), "g", "r", hold_at=6)}
    held["metadata"]["resourceVersion"] = "42"
    assert release_hold_ops(held) == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
        {"op": "replace", "path": "/spec/minReplicas", "value": 2},
        {"op": "remove", "path": "/metadata/annotations/greenlight.io~1held-min-replicas"}]
    assert release_hold_ops(_hpa("web", "b")) is None


def test_two_hpas_on_blue_are_refused_naming_both():
    problems = hpa_problems([_hpa("a", "blue"), _hpa("b", "blue")], "blue", "green")
    assert problems == ["Deployment 'blue' is scaled by 2 HorizontalPodAutoscalers (a, b): keep one"]


def test_someone_elses_hpa_on_green_or_on_greens_name_is_refused_greenlights_own_is_not():
    assert "already scales green" in hpa_problems([_hpa("x", "green")], "blue", "green")[0]
    assert "is taken by one that scales 'other'" in hpa_problems(
        [_hpa("a", "blue"), _hpa("green", "other")], "blue", "green")[0]
    ours = _hpa("green", "green", labels={MANAGED_BY: "greenlight"})
    assert hpa_problems([_hpa("a", "blue"), ours], "blue", "green") == []
