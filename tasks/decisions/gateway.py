"""Pure decisions of a canary by HTTPRoute weights (`traffic: gateway`): the state after each step (weight, canary
pods, A/B matches), the route's rules that state asks for, whether the route is accepted and current, what
preflight refuses, and the canary Service greenlight creates. No I/O; table-tested in tests/unit/test_gateway.py.

The route as greenlight leaves it at rest: the chosen rule's only backendRef is the stable Service, weight 100 (a
weight 0 step drops the canary's backendRef rather than keep a weight-0 one). During the steps the rule carries
stable at 100 - N and the canary Service at N; a `match` step adds one rule right before it, with the same path
matches plus the header matches, whose only backendRef is the canary Service (weight 100). Greenlight's own rules
are told apart by that: every backendRef is the canary Service (preflight refuses a route that already sends
elsewhere to it).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

from prefect_greenlight.tasks.decisions.colors import pod_labels, selector_matches
from prefect_greenlight.tasks.spec.canary import TRACK_LABEL, CanaryStep
from prefect_greenlight.tasks.spec.gateway import CanaryScale, RouteCreate, RouteMatch

GROUP = "gateway.networking.k8s.io"
DEFAULT_MATCH = {"path": {"type": "PathPrefix", "value": "/"}}
_RE_SPECIAL = set("\\.+*?()|[]{}^$")


@dataclass(frozen=True)
class GatewayState:
    """Where traffic and the canary's pods stand after a step."""

    weight: int
    canary_pods: int
    matches: tuple[RouteMatch, ...] = ()

    def describe(self) -> str:
        ab = f"; {' and '.join(m.describe() for m in self.matches)} -> canary" if self.matches else ""
        return f"route {100 - self.weight}/{self.weight} stable/canary{ab}; {self.canary_pods} canary pod(s)"


AT_REST = GatewayState(0, 0)


def canary_pods(stable_replicas: int, weight: int, scale: CanaryScale | None) -> int:
    """The canary's pods (Argo Rollouts' setCanaryScale): an explicit count; a share of stable's replicas; or,
    by default, the weight's share of stable's replicas. Shares round up, at least 1 (so 1 % of 3 is 1 pod)."""
    if scale is not None and scale.replicas is not None:
        return scale.replicas
    share = scale.share_of_stable if scale is not None and scale.share_of_stable is not None else weight
    return max(1, math.ceil(stable_replicas * share / 100))


def gateway_states(steps: Sequence[CanaryStep], stable_replicas: int) -> tuple[GatewayState, ...]:
    """The state after each step of the list, in order (a pause or analysis keeps the one before). At weight 100
    the canary has at least stable's replicas, whatever `set_canary_scale` said (all traffic, full capacity).
    ValueError naming the step when traffic (a weight or a match) would go to a canary with 0 pods."""
    weight, scale, matches, out = 0, None, (), []
    for n, step in enumerate(steps, 1):
        weight = step.set_weight if step.set_weight is not None else weight
        if step.set_canary_scale is not None:
            scale = None if step.set_canary_scale.match_traffic_weight else step.set_canary_scale
        matches = tuple(step.match) if step.match is not None else matches
        pods = canary_pods(stable_replicas, weight, scale)
        state = GatewayState(weight, max(pods, stable_replicas) if weight == 100 else pods, matches)
        if state.canary_pods == 0 and (weight or matches):
            raise ValueError(f"step {n} ({step.describe()}): {weight} % and {len(matches)} match(es) would go to "
                             "a canary with 0 pods")
        out.append(state)
    return tuple(out)


def scale_first(current_pods: int, want_pods: int) -> bool:
    """More canary pods are ready before the route sends them more; fewer only after it sends them less."""
    return want_pods >= current_pods


def refers_to(ref: dict, namespace: str, service: str, route_namespace: str) -> bool:
    """Whether a backendRef names the core Service `namespace/service` (group "" and kind Service by default)."""
    return (ref.get("group") or "") == "" and (ref.get("kind") or "Service") == "Service" and \
        ref.get("name") == service and (ref.get("namespace") or route_namespace) == namespace


def is_greenlight_rule(rule: dict, namespace: str, canary: str) -> bool:
    refs = rule.get("backendRefs") or []
    return bool(refs) and all(refers_to(r, namespace, canary, namespace) for r in refs)


def user_rules(rules: Sequence[dict], namespace: str, canary: str) -> list[dict]:
    """The route's rules without greenlight's match rule (the index in the spec counts these)."""
    return [r for r in rules if not is_greenlight_rule(r, namespace, canary)]


def cookie_regex(name: str, value: str) -> str:
    """A Cookie header holding NAME=VALUE among others: Flagger's `^(.*?;)?(NAME=VALUE)(;.*)?$`, escaped, and
    allowing the space browsers put after each `;` ("a=1; NAME=VALUE")."""
    def esc(text: str) -> str:
        return "".join("\\" + ch if ch in _RE_SPECIAL else ch for ch in text)
    return f"^(.*?;\\s*)?({esc(name)}={esc(value)})(;.*)?$"


def header_match(m: RouteMatch) -> dict:
    if m.cookie is not None:
        return {"type": "RegularExpression", "name": "Cookie", "value": cookie_regex(m.cookie, m.value)}
    return {"type": "RegularExpression" if m.regex else "Exact", "name": m.header, "value": m.value}


def _canary_ref(stable_ref: dict, canary: str, weight: int) -> dict:
    """The canary's backendRef: the stable one's group, kind, namespace and port (as the apiserver defaulted
    them, so the rules read back equal the rules applied), another name and weight."""
    kept = {k: stable_ref[k] for k in ("group", "kind", "namespace", "port") if k in stable_ref}
    return {**kept, "name": canary, "weight": weight}


def desired_rules(rules: Sequence[dict], index: int, namespace: str, stable: str, canary: str,
                  state: GatewayState) -> list[dict]:
    """The route's rules for `state`: the rule at `index` (of the user's rules) weighted stable 100 - N / canary
    N (no canary backendRef at 0), greenlight's match rule right before it when there are matches. Everything
    else as read. ValueError when the rule does not reference the stable Service."""
    kept = copy.deepcopy(user_rules(rules, namespace, canary))
    if index >= len(kept):
        raise ValueError(f"the route has {len(kept)} rule(s); rule {index} does not exist")
    rule = kept[index]
    refs = [r for r in rule.get("backendRefs") or [] if not refers_to(r, namespace, canary, namespace)]
    stable_ref = next((r for r in refs if refers_to(r, namespace, stable, namespace)), None)
    if stable_ref is None:
        raise ValueError(f"rule {index} has no backendRef to Service {stable!r}")
    stable_ref["weight"] = 100 - state.weight
    at = refs.index(stable_ref) + 1
    rule["backendRefs"] = refs[:at] + ([_canary_ref(stable_ref, canary, state.weight)] if state.weight else []) \
        + refs[at:]
    if not state.matches:
        return kept
    extra = [header_match(m) for m in state.matches]
    ours = {h["name"].lower() for h in extra}
    ab = {k: v for k, v in copy.deepcopy(rule).items() if k not in ("name", "backendRefs", "matches")}
    ab["matches"] = [{**m, "headers": [*(h for h in m.get("headers") or [] if h.get("name", "").lower() not in ours),
                                       *extra]} for m in (rule.get("matches") or [DEFAULT_MATCH])]
    ab["backendRefs"] = [_canary_ref(stable_ref, canary, 100)]
    return kept[:index] + [ab] + kept[index:]


@dataclass(frozen=True)
class RouteVerdict:
    ok: bool
    message: str


def _condition(entry: dict, kind: str) -> dict:
    return next((c for c in entry.get("conditions") or [] if c.get("type") == kind), {})


def _parent_key(ref: dict, namespace: str) -> tuple[str, str, str]:
    return ref.get("name", ""), ref.get("namespace") or namespace, ref.get("sectionName") or ""


def route_verdict(route: dict, generation: int | None = None) -> RouteVerdict:
    """Whether every parent Gateway of the route reports it Accepted=True and ResolvedRefs=True for `generation`
    (default: the route's own metadata.generation) or later; the message counts what holds."""
    meta, namespace = route.get("metadata") or {}, (route.get("metadata") or {}).get("namespace", "")
    want = int(generation if generation is not None else meta.get("generation") or 0)
    parents = [_parent_key(p, namespace) for p in (route.get("spec") or {}).get("parentRefs") or []]
    if not parents:
        return RouteVerdict(False, f"HTTPRoute {meta.get('name')} has no parentRefs")
    statuses = (route.get("status") or {}).get("parents") or []
    accepted = resolved = current = 0
    problems = []
    for key in parents:
        found = [s for s in statuses if _parent_key(s.get("parentRef") or {}, namespace) == key]
        fresh = [s for s in found if all(int(_condition(s, k).get("observedGeneration") or 0) >= want
                                         for k in ("Accepted", "ResolvedRefs"))]
        current += bool(fresh)
        ok_a = [s for s in fresh if _condition(s, "Accepted").get("status") == "True"]
        ok_r = [s for s in ok_a if _condition(s, "ResolvedRefs").get("status") == "True"]
        accepted, resolved = accepted + bool(ok_a), resolved + bool(ok_r)
        for s in fresh if not ok_r else []:
            bad = _condition(s, "Accepted") if not ok_a else _condition(s, "ResolvedRefs")
            problems.append(f"{key[0]}: {bad.get('type', 'no condition')}={bad.get('status', '?')} "
                            f"{bad.get('reason', '')} {bad.get('message', '')!r}".rstrip())
    n = len(parents)
    message = (f"{current} of {n} parent(s) observed generation {want}, {accepted} of {n} Accepted=True, "
               f"{resolved} of {n} ResolvedRefs=True" + (f" ({'; '.join(problems)})" if problems else ""))
    return RouteVerdict(resolved == n, message)


def _granted(grants: Sequence[dict], route_namespace: str, service: str) -> bool:
    for g in grants:
        spec = g.get("spec") or {}
        src = any(f.get("group") == GROUP and f.get("kind") == "HTTPRoute" and f.get("namespace") == route_namespace
                  for f in spec.get("from") or [])
        dst = any((t.get("group") or "") == "" and t.get("kind") == "Service" and t.get("name") in (None, "", service)
                  for t in spec.get("to") or [])
        if src and dst:
            return True
    return False


def route_manifest(name: str, create: RouteCreate, stable_service: dict) -> dict:
    """The HTTPRoute greenlight creates when it is missing (`gateway.create`): one rule, every request to the
    stable Service's first port, labelled and annotated as greenlight's."""
    service = stable_service["metadata"]["name"]
    port = (((stable_service.get("spec") or {}).get("ports") or [{}])[0]).get("port")
    parent = {"name": create.parent, **({"namespace": create.parent_namespace} if create.parent_namespace else {}),
              **({"sectionName": create.section} if create.section else {})}
    return {"apiVersion": f"{GROUP}/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "greenlight"},
                         "annotations": {"greenlight.io/route-of": service}},
            "spec": {"parentRefs": [parent], **({"hostnames": list(create.hostnames)} if create.hostnames else {}),
                     "rules": [{"backendRefs": [{"name": service, "port": port}]}]}}


def route_problems(route: dict, index: int, stable: str, canary: str,
                   grants: dict[str, list[dict]], created: bool = False) -> list[str]:
    """What preflight refuses in the route: the rule missing or not sending to stable alone; no parent Gateway
    that accepted it (not asked of a route greenlight is about to create: its first change waits for that); a
    backendRef in another namespace that no ReferenceGrant there allows (`grants`: the ReferenceGrants by
    namespace)."""
    meta = route.get("metadata") or {}
    name, namespace = meta.get("name"), meta.get("namespace", "")
    rules = user_rules((route.get("spec") or {}).get("rules") or [], namespace, canary)
    problems = []
    if index >= len(rules):
        problems.append(f"HTTPRoute {name!r} has {len(rules)} rule(s): gateway.rule {index} does not exist")
    else:
        refs = [r for r in rules[index].get("backendRefs") or [] if not refers_to(r, namespace, canary, namespace)]
        if not any(refers_to(r, namespace, stable, namespace) for r in refs):
            problems.append(f"HTTPRoute {name!r} rule {index} does not reference the stable Service {stable!r} "
                            f"(backendRefs: {[r.get('name') for r in refs]})")
        elif len(refs) != 1:
            problems.append(f"HTTPRoute {name!r} rule {index} sends to {len(refs)} backends "
                            f"{[r.get('name') for r in refs]}: greenlight weighs a rule whose only backend is "
                            f"{stable!r}")
    statuses = (route.get("status") or {}).get("parents") or []
    if not created and not any(_condition(s, "Accepted").get("status") == "True" for s in statuses):
        problems.append(f"HTTPRoute {name!r}: no parent Gateway has accepted it (no Accepted=True among "
                        f"{len(statuses)} parent status(es))")
    for rule in rules:
        for ref in rule.get("backendRefs") or []:
            other = ref.get("namespace") or namespace
            if other != namespace and not _granted(grants.get(other, []), namespace, ref.get("name", "")):
                problems.append(f"HTTPRoute {name!r} sends to {ref.get('kind') or 'Service'} {other}/"
                                f"{ref.get('name')} and no ReferenceGrant in {other!r} allows it")
    return problems


def cross_namespaces(route: dict) -> list[str]:
    """The namespaces, other than the route's, its backendRefs point into (their ReferenceGrants are read)."""
    namespace = (route.get("metadata") or {}).get("namespace", "")
    found = {r.get("namespace") for rule in (route.get("spec") or {}).get("rules") or []
             for r in rule.get("backendRefs") or []}
    return sorted(n for n in found if n and n != namespace)


def canary_service_manifest(stable_service: dict, name: str) -> dict:
    """The canary Service greenlight creates: the stable Service's ports (no nodePort) and selector plus the
    canary track label, ClusterIP, labelled as greenlight's."""
    spec = stable_service.get("spec") or {}
    ports = [{k: v for k, v in p.items() if k != "nodePort"} for p in spec.get("ports") or []]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "greenlight", TRACK_LABEL: "canary"},
                         "annotations": {"greenlight.io/canary-service-of": stable_service["metadata"]["name"]}},
            "spec": {"type": "ClusterIP", "ports": ports,
                     "selector": {**(spec.get("selector") or {}), TRACK_LABEL: "canary"}}}


def service_problems(stable_service: dict, canary_service: dict, stable: dict, canary: dict) -> list[str]:
    """Each Service must select its own version only: otherwise a weight sends traffic to the other version."""
    problems = []
    for svc, own, other in ((stable_service, stable, canary), (canary_service, canary, stable)):
        sel, name = (svc.get("spec") or {}).get("selector") or {}, svc["metadata"]["name"]
        if not selector_matches(sel, pod_labels(own)):
            problems.append(f"Service {name!r} selector {sel} does not select {own['metadata']['name']!r}'s pods "
                            f"(labels {pod_labels(own)})")
        if selector_matches(sel, pod_labels(other)):
            problems.append(f"Service {name!r} selector {sel} also selects {other['metadata']['name']!r}'s pods "
                            f"(labels {pod_labels(other)}): with traffic: gateway each Service selects one version "
                            f"(e.g. `{TRACK_LABEL}: stable` on stable's pods and the stable Service's selector)")
    return problems
