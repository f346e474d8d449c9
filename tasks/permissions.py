"""Before changing anything, ask the apiserver (SelfSubjectAccessReview) whether the credentials may do every
call the release will make, and refuse naming each missing permission — instead of failing half-way with a 403.
`needed` is pure; `missing` does the asking."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tasks.errors import BadInput
from tasks.kube import TIMEOUT, Kube


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


def needed(*, port_forward: bool, manage_services: bool, deletes: bool) -> list[Permission]:
    """Every permission a release with these options may use."""
    out = list(COMMON)
    if port_forward:
        out += _all("get create", "pods", "", "portforward")
    if manage_services:
        out += _all("create delete", "services")
    if deletes:
        out += _all("delete", "deployments", "apps")
    return sorted(set(out))


def missing(kube: Kube, namespace: str, needed: list[Permission]) -> list[Permission]:
    def allowed(p: Permission) -> bool:
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                  "spec": {"resourceAttributes": {"namespace": namespace, "verb": p.verb, "group": p.group,
                                                  "resource": p.resource, "subresource": p.subresource}}}
        from kubernetes import client

        resp = client.AuthorizationV1Api(kube.api).create_self_subject_access_review(review, _request_timeout=TIMEOUT)
        return bool(resp.status.allowed)

    with ThreadPoolExecutor(max_workers=8) as pool:
        verdicts = list(pool.map(allowed, needed))
    return [p for p, ok in zip(needed, verdicts) if not ok]


def require(kube: Kube, namespace: str, needed: list[Permission]) -> None:
    """BadInput naming every missing permission (nothing has been changed yet)."""
    lacking = missing(kube, namespace, needed)
    if lacking:
        raise BadInput(f"the credentials ({kube.config_source}) lack {len(lacking)} permission(s) in namespace "
                       f"{namespace!r}: {', '.join(map(str, lacking))} (see deployments/rbac.yaml)")
