"""Traffic through the local cluster's gateway (tests/cluster/gateway.py: Traefik's Gateway API provider in the
network namespace), held against the HTTPRoute's weights as they changed.

A RouteSampler polls one HTTPRoute while a scenario runs and records when the weighted rule's backend weights
changed (the rule without header matches: an A/B rule of greenlight's sends only matching requests). After the
block, `weight_misses` says where the answers did not follow the weights:

- wherever the weights held still for longer than GATEWAY_LAG_S + MIN_WINDOW_S, each backend's share of answers
  matches its weight's share within z = 4 standard deviations (the ClusterIP checks' binomial tolerance; Traefik
  picks a backend per request, keep-alive or not, so every answer counts);
- a backend with weight 0 answers nothing there, and one with a positive weight answers at least once when the
  window holds enough requests to expect five of its answers.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from tests.cluster.gateway import GATEWAY, GATEWAY_NAMESPACE, GATEWAY_PORT
from tests.e2e.helpers import wait_for
from tests.e2e.traffic import TrafficCheck, TrafficResult, netns_get

GROUP, VERSION = "gateway.networking.k8s.io", "v1"
# From a route's new generation to Traefik routing by it: the provider's watch and configuration rebuild (0.077-0.216 s
# here, bench/gateway_settle.py), but a change within 2 s of the previous configuration (a pod of the canary's
# Service turning ready, say) waits out Traefik's providersThrottleDuration (2 s by default): the route's status
# says Accepted at its generation up to ~2 s before the data path follows (seen here in
# test_gateway_canary's header test; CI once saw 2 Traefik 404s after Accepted). The same lag any Gateway controller
# that batches changes has: a test that needs the route in force from its first request calls wait_until_in_force.
GATEWAY_LAG_S = 3.0
MIN_WINDOW_S = 2.0
MIN_DRAWS = 100


def route_manifest(namespace: str, name: str, host: str, stable: str, canary: str, canary_weight: int = 0,
                   port: int = 80) -> dict:
    """An HTTPRoute of the kind users write: one rule, stable and canary Services by weight, on the test Gateway."""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"parentRefs": [{"name": GATEWAY, "namespace": GATEWAY_NAMESPACE}], "hostnames": [host],
                     "rules": [{"backendRefs": [{"name": stable, "port": port, "weight": 100 - canary_weight},
                                                {"name": canary, "port": port, "weight": canary_weight}]}]}}


def weighted_rule(route: dict) -> dict | None:
    """The rule every request without a matching header takes: the first one without header matches."""
    for rule in (route.get("spec") or {}).get("rules") or []:
        if not any(m.get("headers") for m in rule.get("matches") or []):
            return rule
    return None


def weights_of(route: dict) -> dict[str, int]:
    rule = weighted_rule(route) or {}
    return {ref["name"]: int(ref.get("weight", 1)) for ref in rule.get("backendRefs") or []}


@dataclass(frozen=True)
class WeightSpan:
    start: float  # wall clock
    end: float
    weights: dict[str, int]  # Service -> weight

    def share(self, service: str) -> float:
        total = sum(self.weights.values())
        return self.weights.get(service, 0) / total if total else 0.0


@dataclass(frozen=True)
class RouteChange:
    """One change of the route's weights, as a poll saw it. `after`: no earlier than this was it made (the start
    of the last read that still returned the previous weights), so answers before it follow those; `by`: it was
    made by then (the read that saw it was answered), so the gateway follows it from GATEWAY_LAG_S after. A starved
    poll thread (2 loaded cores) can widen the gap to seconds, so checks take the safe end."""

    after: float
    by: float
    weights: dict[str, int]  # Service -> weight


@dataclass
class RouteSampler:
    """Context manager: records the route's weights (polled every `interval_s`) from __enter__ to __exit__."""

    custom: object  # kubernetes.client.CustomObjectsApi
    namespace: str
    route: str
    interval_s: float = 0.05
    changes: list[RouteChange] = field(default_factory=list)
    ended: float = 0.0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True, name=f"route-{self.route}")

    def _read(self) -> dict[str, int] | None:
        try:
            return weights_of(self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, "httproutes",
                                                                       self.route))
        except Exception:  # noqa: BLE001 - a missing route or an apiserver hiccup: no change recorded
            return None

    def _poll(self) -> None:
        last_read = 0.0  # when the last read that returned the current weights started
        while not self._stop.is_set():
            started = time.time()
            weights = self._read()
            if weights is not None and (not self.changes or self.changes[-1].weights != weights):
                self.changes.append(RouteChange(last_read or started, time.time(), weights))
            if weights is not None:
                last_read = started
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "RouteSampler":
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self.changes and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.changes:
            raise RuntimeError(f"HTTPRoute {self.namespace}/{self.route} could not be read for 15 s")
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self.ended = time.time()

    def spans(self, end: float | None = None) -> list[WeightSpan]:
        end = end or self.ended or time.time()
        ends = [c.after for c in self.changes[1:]] + [end]
        return [WeightSpan(c.by, nxt, c.weights) for c, nxt in zip(self.changes, ends) if nxt > c.by]

    def canary_shares(self, canary: str) -> list[int]:
        """The canary's weight percentages in the order they were set (a repeat of the same value counts once)."""
        out: list[int] = []
        for weights in (c.weights for c in self.changes):
            total = sum(weights.values())
            pct = round(100 * weights.get(canary, 0) / total) if total else 0
            if not out or out[-1] != pct:
                out.append(pct)
        return out


def weight_misses(result: TrafficResult, spans: list[WeightSpan], deployments: dict[str, str]) -> list[str]:
    """Where answers did not follow the weights (see the module docstring). `deployments`: Service -> the
    Deployment whose pods it selects."""
    misses = []
    for span in spans:
        start = span.start + GATEWAY_LAG_S
        answered = result.answered(start, span.end)
        if span.end - start < MIN_WINDOW_S or len(answered) < MIN_DRAWS:
            continue
        for service, deployment in deployments.items():
            p = span.share(service)
            check = result.share(deployment, p, start, span.end, conn="all")
            where = f"{service} at weight {span.weights.get(service, 0)} of {sum(span.weights.values())}"
            if p == 0 and check.hits:
                misses.append(f"{where}: {check.hits} answers where none may come")
            elif p > 0 and not check.ok:
                misses.append(f"{where}: {check.describe()}")
            elif p > 0 and check.hits == 0 and p * check.n >= 5:
                misses.append(f"{where}: no answer in {check.n} requests")
    return misses


def through_gateway(netns: str, kubeconfig: str, namespace: str, service: str, host: str,
                    headers: dict[str, str] | None = None, **options) -> TrafficCheck:
    """A TrafficCheck whose requests go to the Gateway's listener (inside the namespace) for `host`."""
    return TrafficCheck(netns, kubeconfig, namespace, service, target=("127.0.0.1", GATEWAY_PORT),
                        headers={"Host": host, **(headers or {})}, **options)


def accepted_at_generation(custom, namespace: str, name: str) -> bool:
    """The route's status says Accepted and ResolvedRefs, for a parent, at the route's current generation."""
    route = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", name)
    generation = route["metadata"]["generation"]
    for parent in (route.get("status") or {}).get("parents") or []:
        conditions = {c["type"]: c for c in parent.get("conditions") or []}
        if all(conditions.get(t, {}).get("status") == "True" and conditions[t]["observedGeneration"] >= generation
               for t in ("Accepted", "ResolvedRefs")):
            return True
    return False


def wait_until_in_force(custom, netns: str, namespace: str, route: str, host: str, deployment: str,
                        headers: dict[str, str] | None = None) -> None:
    """The route accepted at its generation (its status), then followed by the data path: a request for `host`
    (with `headers`) answered by `deployment`'s pods."""
    wait_for(f"route {route} accepted", lambda: accepted_at_generation(custom, namespace, route), 30)
    wait_until_routed(netns, host, deployment, headers)


def wait_until_routed(netns: str, host: str, deployment: str, headers: dict[str, str] | None = None,
                      timeout: float = 30) -> None:
    """Wait until a request through the gateway for `host` (with `headers`) is answered by `deployment`'s pods: the
    data path follows the route's Accepted status by up to GATEWAY_LAG_S (a 404 from Traefik until then)."""
    def answered_by() -> bool:
        return netns_get(netns, "127.0.0.1", GATEWAY_PORT, timeout_s=2,
                         headers={"Host": host, **(headers or {})}).deployment == deployment

    wait_for(f"the gateway routing {host} {headers or {}} to {deployment}", answered_by, timeout)
