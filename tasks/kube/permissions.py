"""Before changing anything, ask the apiserver whether the credentials may do every call the release will make,
and refuse naming each missing permission — instead of failing half-way with a 403.

One SelfSubjectRulesReview lists what we may do in the namespace; `covered` (pure, RBAC's matching rules) checks
each needed permission against it. Only what the rules do not show — a rule limited to resourceNames, or an
authorizer that cannot list its rules (`incomplete`: then everything) — is asked one by one with
SelfSubjectAccessReview, the authoritative answer. `needed` and `covered` are pure; `missing` does the asking."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from kubernetes import client

from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.kube.client import TIMEOUT, Kube


@dataclass(frozen=True, order=True)
class Permission:
    verb: str
    resource: str
    group: str = ""
    subresource: str = ""

    def __str__(self) -> str:
        res = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        return f"{self.verb} {res}" + (f".{self.group}" if self.group else "")


def _all(verbs: str, resource: str, group: str = "", sub: str = "") -> list[Permission]:
    return [Permission(v, resource, group, sub) for v in verbs.split()]


COMMON = (
    _all("get", "namespaces")
    + _all("get list watch create patch", "deployments", "apps")
    + _all("patch", "deployments", "apps", "scale")
    + _all("list watch", "replicasets", "apps")
    + _all("list watch", "pods")
    + _all("get patch", "services")
    + _all("list watch", "endpointslices", "discovery.k8s.io")
    + _all("get create update delete", "leases", "coordination.k8s.io")
)


# Job hooks (deployments/rbac-hooks.yaml): create the Job (or find it again: get), wait for it (list, watch),
# delete one that is doomed but still running; read its pods' logs for the report.
JOB_HOOKS = _all("create get list watch delete", "jobs", "batch") + _all("get", "pods", "", "log")


# `traffic: gateway` canaries (deployments/rbac-gateway.yaml): read and apply the HTTPRoute, read the
# ReferenceGrants of cross-namespace backendRefs; create the canary Service when it is missing.
GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_ROUTE = _all("get patch", "httproutes", GATEWAY_GROUP)
REFERENCE_GRANTS = _all("list", "referencegrants", GATEWAY_GROUP)
CREATE_ROUTE = _all("create", "httproutes", GATEWAY_GROUP)  # only with `gateway.create` and the route missing
CREATE_SERVICE = _all("create", "services")
# A blue-green through the route (`traffic: gateway`): also green's Service, created and deleted again.
ROUTE_SWITCH = GATEWAY_ROUTE + _all("create delete", "services")


def needed(*, port_forward: bool, manage_services: bool, deletes: bool, autoscaler: bool = False,
           jobs: bool = False) -> list[Permission]:
    """Every permission a release with these options may use. HPAs are always listed (is one scaling blue?);
    they are written only when one is. `jobs`: the release has Job hooks."""
    out = list(COMMON) + _all("list", "horizontalpodautoscalers", "autoscaling") + (JOB_HOOKS if jobs else [])
    if autoscaler:
        out += _all("get create patch delete", "horizontalpodautoscalers", "autoscaling")
    if port_forward:
        out += _all("get create", "pods", "", "portforward")
    if manage_services:
        out += _all("create delete", "services")
    if deletes:
        out += _all("delete", "deployments", "apps")
    return sorted(set(out))


def covered(rules: list[dict], p: Permission) -> bool:
    """Does one of these resource rules (SelfSubjectRulesReview status.resourceRules) allow `p` on any object?
    RBAC's matching: `*` matches every verb/group/resource (subresources too); `resource/sub` and `*/sub` match a
    subresource. A rule limited to resourceNames never counts here (it allows only those objects)."""
    wanted = {f"{p.resource}/{p.subresource}", f"*/{p.subresource}"} if p.subresource else {p.resource}
    for rule in rules:
        if rule.get("resourceNames"):
            continue
        if not ({"*", p.verb} & set(rule.get("verbs") or [])):
            continue
        if not ({"*", p.group} & set(rule.get("apiGroups") or [])):
            continue
        resources = set(rule.get("resources") or [])
        if "*" in resources or wanted & resources:
            return True
    return False


# The file of deployments/ whose Role grants an API group's permissions (the rest: rbac.yaml).
RBAC_FILES = {"gateway.networking.k8s.io": "deployments/rbac-gateway.yaml"}


def _rules(kube: Kube, namespace: str) -> tuple[list[dict], bool]:
    """(resource rules, complete?) of the credentials in `namespace`; ([], False) if they cannot be listed."""
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
              "spec": {"namespace": namespace}}
    try:
        resp = client.AuthorizationV1Api(kube.api).create_self_subject_rules_review(
            review, _preload_content=False, _request_timeout=TIMEOUT)
    except Exception:  # noqa: BLE001 - fall back to asking permission by permission
        return [], False
    status = json.loads(resp.data).get("status") or {}
    return list(status.get("resourceRules") or []), not status.get("incomplete", False)


def missing(kube: Kube, namespace: str, needed: list[Permission]) -> list[Permission]:
    rules, complete = _rules(kube, namespace)
    # An incomplete list means another authorizer had a say (it might even deny): then ask about everything.
    unsure = [p for p in needed if not (complete and covered(rules, p))]
    if not unsure:
        return []

    def allowed(p: Permission) -> bool:
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                  "spec": {"resourceAttributes": {"namespace": namespace, "verb": p.verb, "group": p.group,
                                                  "resource": p.resource, "subresource": p.subresource}}}
        resp = client.AuthorizationV1Api(kube.api).create_self_subject_access_review(review, _request_timeout=TIMEOUT)
        return bool(resp.status.allowed)

    with ThreadPoolExecutor(max_workers=8) as pool:
        verdicts = list(pool.map(allowed, unsure))
    return [p for p, ok in zip(unsure, verdicts) if not ok]


def require(kube: Kube, namespace: str, needed: list[Permission]) -> None:
    """BadInput naming every missing permission (nothing has been changed yet)."""
    lacking = missing(kube, namespace, needed)
    if lacking:
        files = sorted({RBAC_FILES.get(p.group, "deployments/rbac.yaml") for p in lacking})
        raise BadInput(f"the credentials ({kube.config_source}) lack {len(lacking)} permission(s) in namespace "
                       f"{namespace!r}: {', '.join(map(str, lacking))} (see {' and '.join(files)})")
