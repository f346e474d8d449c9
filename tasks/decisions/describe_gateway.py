"""How the dry run shows a canary by HTTPRoute weights (`traffic: gateway`): what preflight decided (`GatewayPlan`)
and each changing step's weights, matches and pod counts, the promotion and the abort. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from prefect_greenlight.tasks.decisions.gateway import GatewayState
from prefect_greenlight.tasks.decisions.plan import PlanStep, StepKind


@dataclass(frozen=True)
class GatewayPlan:
    """What preflight decided for `traffic: gateway`: the route, its rule, the two Services (the canary one's
    manifest when greenlight must create it), stable's replicas (unchanged by the steps) and the state after each
    step of `spec.step_list()`, in order."""

    route: str
    rule: int
    service: str
    canary_service: str
    stable_replicas: int
    states: tuple[GatewayState, ...]
    create_service: dict | None = None
    create_route: dict | None = None

    def describe(self) -> str:
        made = " (greenlight creates it)" if self.create_service else ""
        route = ""
        if self.create_route:
            parent = self.create_route["spec"]["parentRefs"][0]
            route = f" (greenlight creates it on Gateway {parent.get('namespace', '')}/{parent['name']})"
        return (f"HTTPRoute {self.route}{route} rule {self.rule}: Service {self.service} (stable) and "
                f"{self.canary_service} (canary{made})")


def abort_undo(g: GatewayPlan, stable: str, canary: str) -> str:
    return (f"abort: HTTPRoute {g.route} back to {g.service} 100 % (match rule removed), verified by its parents' "
            f"status, then {canary} to 0; {stable} keeps {g.stable_replicas}")


def describe_change(g: GatewayPlan, name: str, stable: str, canary: str, before: GatewayState,
                    want: GatewayState, timeout_s: float) -> PlanStep:
    """A step that sets weights, matches or the canary's pods: pods first when they rise, the route first when
    they fall."""
    pods = f"{canary} {before.canary_pods} -> {want.canary_pods} pod(s), ready" \
        if want.canary_pods != before.canary_pods else f"{canary} stays at {want.canary_pods} pod(s)"
    matches = " and ".join(m.describe() for m in want.matches) or "none"
    route = (f"HTTPRoute {g.route} rule {g.rule}: {g.service} {100 - want.weight} / {g.canary_service} "
             f"{want.weight}; match rule (canary only): {matches}")
    order = f"{pods}; then {route}" if want.canary_pods >= before.canary_pods else f"{route}; then {pods}"
    return PlanStep(name, StepKind.CHANGE, f"HTTPRoute {g.route}, Deployment {canary}", order,
                    details=(f"server-side apply of spec.rules (field manager greenlight, guarded by the read "
                             f"resourceVersion); {stable} keeps {g.stable_replicas} pod(s)",),
                    undo=abort_undo(g, stable, canary),
                    gate=(f"every parent Gateway reports the route Accepted=True and ResolvedRefs=True at the applied "
                          f"generation, and Services {g.service} / {g.canary_service} hold {g.stable_replicas} / "
                          f"{want.canary_pods} ready endpoints, within {timeout_s:.0f} s"))


def describe_promotion(g: GatewayPlan, stable: str, canary: str) -> PlanStep:
    return PlanStep("cleanup", StepKind.CHANGE, f"Deployments {stable}, {canary}, HTTPRoute {g.route}",
                    f"promote: {stable} takes {canary}'s pod template and waits until its {g.stable_replicas} "
                    f"pod(s) are ready; then HTTPRoute {g.route} back to {g.service} 100 % (verified); then "
                    f"{canary} to 0", when="after the last step", undo="not undone by the release")
