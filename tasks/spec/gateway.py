"""The parts of a canary spec for `traffic: gateway`: traffic moved by the weights of a Gateway API HTTPRoute
(`gateway.networking.k8s.io/v1`, `spec.rules[].backendRefs[].weight`) instead of by replica counts.

- `GatewayRoute`: which HTTPRoute (same namespace), which of its rules, and the canary Service (default
  `<service>-canary`; created and owned by greenlight when missing: stable Service's ports, its selector plus
  `greenlight.io/track: canary`).
- `CanaryScale`: a `set_canary_scale` step (Argo Rollouts' setCanaryScale): the canary's pods on their own.
- `BlueGreenTraffic`, `SwitchRoute`: a blue-green whose switch moves an HTTPRoute's backendRef.
- `RouteMatch`: one entry of a `match` step (Flagger's A/B): a header (exact, or `regex: true`) or a cookie.
"""

from __future__ import annotations

from enum import Enum

from pydantic import Field, model_validator

from prefect_greenlight.tasks.spec.common import Name, SpecModel

HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$"  # RFC 7230 token, as the Gateway API's HTTPHeaderName
COOKIE_NAME = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$"


class TrafficMode(str, Enum):
    REPLICAS = "replicas"  # the Service selects both versions; traffic follows the replica ratio (the default)
    GATEWAY = "gateway"  # an HTTPRoute's backendRef weights move traffic; replicas are set apart


def check_gateway_pairing(gateway_on: bool, block: object, default: str) -> None:
    """`traffic: gateway` and the `gateway` block go together (blue-green and canary alike); `default` says what the
    default traffic mode does instead."""
    if gateway_on and block is None:
        raise ValueError("traffic: gateway needs a `gateway` block (at least `route: <HTTPRoute name>`)")
    if not gateway_on and block is not None:
        raise ValueError(f"a `gateway` block needs `traffic: gateway` (the default, {default})")


class RouteCreate(SpecModel):
    """The HTTPRoute greenlight creates, and owns, when `gateway.route` does not exist: attached to this Gateway,
    for these hostnames, one rule sending every request to the stable Service."""

    parent: Name = Field(..., description="The Gateway the route attaches to (`parentRefs[0].name`).")
    parent_namespace: Name | None = Field(None, description="The Gateway's namespace; default: the spec's.")
    section: Name | None = Field(None, description="One listener of the Gateway (`sectionName`); default: every "
                                 "listener that allows the route.")
    hostnames: list[str] = Field(default_factory=list, max_length=16, description="Hostnames the route answers "
                                 "(`spec.hostnames`); default: none, i.e. those of the Gateway's listeners.")


class GatewayRoute(SpecModel):
    """The HTTPRoute whose weights move traffic (`traffic: gateway`)."""

    route: Name = Field(..., description="HTTPRoute name, in the spec's namespace.")
    rule: int = Field(0, ge=0, le=63, description="Index of the route rule (`spec.rules[rule]`) whose backendRefs "
                      "carry the weights; it must reference the spec's `service` (the stable Service).")
    canary_service: Name | None = Field(None, description="Service selecting only the canary's pods; default "
                                        "`<service>-canary`. Created (and owned) by greenlight when missing: the "
                                        "stable Service's ports, its selector plus `greenlight.io/track: canary`.")
    create: RouteCreate | None = Field(None, description="When the HTTPRoute does not exist, greenlight creates "
                                       "(and owns) it: see RouteCreate. Without it a missing route is refused.")

    @model_validator(mode="after")
    def _created_rule(self) -> "GatewayRoute":
        if self.create is not None and self.rule != 0:
            raise ValueError(f"gateway.create makes a route of one rule: gateway.rule must be 0, got {self.rule}")
        return self


class BlueGreenTraffic(str, Enum):
    SELECTOR = "selector"  # the Service's selector moves from blue to green (the default)
    GATEWAY = "gateway"  # an HTTPRoute's backendRef moves from the Service to green's Service


class SwitchRoute(SpecModel):
    """The HTTPRoute a blue-green switches (`traffic: gateway`): its rule's only backendRef moves from the spec's
    `service` to green's Service, and back to `service` once that selects green too."""

    route: Name = Field(..., description="HTTPRoute name, in the spec's namespace.")
    rule: int = Field(0, ge=0, le=63, description="Index of the route rule (`spec.rules[rule]`) that is switched; "
                      "its only backendRef must be the spec's `service`.")
    green_service: Name | None = Field(None, description="Service selecting only green's pods during the switch; "
                                       "default `<service>-next`. Created (and owned) by greenlight when missing "
                                       "(the Service's ports, green's selector) and removed once the route is "
                                       "back on `service`.")


class CanaryScale(SpecModel):
    """A `set_canary_scale` step: exactly one of `replicas`, `share_of_stable`, `match_traffic_weight`."""

    replicas: int | None = Field(None, ge=0, le=10000, description="The canary's pods, a count.")
    share_of_stable: int | None = Field(None, ge=1, le=100, description="The canary's pods as a percentage of "
                                        "stable's replicas, rounded up, at least 1.")
    match_traffic_weight: bool | None = Field(None, description="`true`: back to the default, the traffic "
                                              "weight's share of stable's replicas, rounded up, at least 1.")

    @model_validator(mode="after")
    def _one(self) -> "CanaryScale":
        given = [k for k in ("replicas", "share_of_stable", "match_traffic_weight") if getattr(self, k) is not None]
        if len(given) != 1 or self.match_traffic_weight is False:
            raise ValueError("set_canary_scale is exactly one of {replicas: N}, {share_of_stable: P}, "
                             f"{{match_traffic_weight: true}}; got {given or 'none'}")
        return self

    def describe(self) -> str:
        if self.replicas is not None:
            return f"{self.replicas} canary pod(s)"
        if self.share_of_stable is not None:
            return f"canary pods {self.share_of_stable} % of stable's"
        return "canary pods follow the weight"


class RouteMatch(SpecModel):
    """Requests sent to the canary only, whatever the weight: a header (`{header: X-Canary, value: always}`,
    exact, or a regular expression with `regex: true`) or a cookie (`{cookie: canary, value: always}`)."""

    header: str | None = Field(None, min_length=1, max_length=256, pattern=HEADER_NAME,
                               description="HTTP header name.")
    cookie: str | None = Field(None, min_length=1, max_length=256, pattern=COOKIE_NAME,
                               description="Cookie name: matched in the Cookie header as NAME=VALUE.")
    value: str = Field(..., min_length=1, max_length=4096, description="The header's value (exact unless "
                       "`regex`), or the cookie's value (exact).")
    regex: bool = Field(False, description="Header only: `value` is a regular expression (RE2 syntax).")

    @model_validator(mode="after")
    def _one(self) -> "RouteMatch":
        if (self.header is None) == (self.cookie is None):
            raise ValueError("a match is exactly one of {header: NAME, value: V} or {cookie: NAME, value: V}")
        if self.cookie is not None and self.regex:
            raise ValueError(f"cookie {self.cookie!r}: regex is for header matches only (a cookie is matched "
                             "exactly)")
        if any(ch in self.value for ch in "\r\n"):
            raise ValueError("a match value may not contain a line break")
        return self

    def describe(self) -> str:
        if self.cookie is not None:
            return f"cookie {self.cookie}={self.value}"
        return f"header {self.header} {'~' if self.regex else '='} {self.value}"
