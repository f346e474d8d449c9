"""Which needed permissions a SelfSubjectRulesReview's rules already show as allowed (RBAC's matching rules)."""

from __future__ import annotations

import pytest

from prefect_greenlight.tasks.kube.permissions import Permission, covered, needed

PF = Permission("create", "pods", "", "portforward")


@pytest.mark.parametrize("rule,perm,ok", [
    ({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, PF, True),  # cluster-admin
    ({"verbs": ["get", "patch"], "apiGroups": [""], "resources": ["services"]}, Permission("patch", "services"), True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["services"]}, Permission("patch", "services"), False),
    ({"verbs": ["patch"], "apiGroups": ["apps"], "resources": ["services"]}, Permission("patch", "services"), False),
    ({"verbs": ["patch"], "apiGroups": ["apps"], "resources": ["deployments"]},
     Permission("patch", "deployments", "apps", "scale"), False),  # a subresource needs its own rule
    ({"verbs": ["patch"], "apiGroups": ["apps"], "resources": ["deployments/scale"]},
     Permission("patch", "deployments", "apps", "scale"), True),
    ({"verbs": ["create"], "apiGroups": [""], "resources": ["*/portforward"]}, PF, True),
    ({"verbs": ["create"], "apiGroups": [""], "resources": ["pods"]}, PF, False),
    ({"verbs": ["get", "patch"], "apiGroups": [""], "resources": ["services"], "resourceNames": ["web"]},
     Permission("patch", "services"), False),  # only that object: ask the apiserver
    ({"verbs": ["list"], "apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"]},
     Permission("list", "endpointslices", "discovery.k8s.io"), True),
])
def test_covered(rule, perm, ok):
    assert covered([rule], perm) is ok


def test_the_shipped_role_covers_everything_a_release_needs():
    """deployments/rbac.yaml's Role, as a rules review would return it, covers every permission of the largest
    release (port-forward, preview Service, deletes)."""
    import yaml

    from tests.e2e.release_helpers import ROOT

    docs = list(yaml.safe_load_all((ROOT / "deployments" / "rbac.yaml").read_text()))
    [role] = [d for d in docs if d and d["kind"] == "Role"]
    wanted = needed(port_forward=True, manage_services=True, deletes=True)
    assert [str(p) for p in wanted if not covered(role["rules"], p)] == []


def test_the_gateway_role_covers_what_a_gateway_canary_adds():
    """deployments/rbac-gateway.yaml covers the HTTPRoute, the ReferenceGrants and the canary Service's create,
    and what a blue-green through the route adds (green's Service created and deleted)."""
    import yaml

    from prefect_greenlight.tasks.kube.permissions import CREATE_SERVICE, GATEWAY_ROUTE, REFERENCE_GRANTS, ROUTE_SWITCH
    from tests.e2e.release_helpers import ROOT

    docs = list(yaml.safe_load_all((ROOT / "deployments" / "rbac-gateway.yaml").read_text()))
    [role] = [d for d in docs if d and d["kind"] == "Role"]
    wanted = GATEWAY_ROUTE + REFERENCE_GRANTS + CREATE_SERVICE + ROUTE_SWITCH
    assert [str(p) for p in wanted if not covered(role["rules"], p)] == []
