"""What `greenlight abort` acts on, from the Service's `greenlight.io/canary-*` annotations, and how its one step
describes itself. Pure. The list of steps is tasks/canary/abort_strategy.py's.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect_greenlight.tasks.decisions.plan import PlanStep, StepKind
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.spec import Deadlines
from prefect_greenlight.tasks.spec.canary import baseline_name


@dataclass(frozen=True)
class CanaryAbort:
    """The canary release to abort, as the Service records it."""

    namespace: str
    service: str
    stable: str
    canary: str
    total: int  # the stable's recorded total: what it goes back to (0: not recorded)
    recorded_total: str | None  # as written, for the error
    step: str  # "2/5": the step the release reached
    release_id: str
    deadlines: Deadlines
    route: tuple[str, int, str] | None = None  # `traffic: gateway`: (HTTPRoute, rule, canary Service)

    @property
    def abort_id(self) -> str:
        return f"abort-{self.release_id}"[:63]

    @property
    def aborted_step(self) -> str:
        """The progress annotation's step once aborted: "0/5"."""
        return f"0/{self.step.split('/')[-1]}"

    def check_total(self) -> None:
        if self.total < 1:
            raise BadInput(f"Service {self.service!r} records no usable total ({self.recorded_total!r})")


def canary_abort(namespace: str, service: str, progress: dict[str, str], deadlines: Deadlines) -> CanaryAbort:
    """The abort of what `progress` (the annotations, prefix stripped) records, or BadInput: no canary release
    recorded, or one already promoted."""
    if not progress.get("stable") or not progress.get("deployment"):
        raise BadInput(f"Service {service!r} records no canary release (no greenlight.io/canary-* annotations)")
    if progress.get("state") == "promoted":
        raise BadInput(f"the canary {progress['deployment']} of Service {service!r} was already promoted; nothing "
                       "to abort")
    return CanaryAbort(namespace, service, progress["stable"], progress["deployment"],
                       int(progress.get("total") or 0), progress.get("total"), progress.get("step", "?/?"),
                       progress.get("release-id", "canary"), deadlines, _route(progress.get("route")))


def _route(recorded: str | None) -> tuple[str, int, str] | None:
    """The recorded `<HTTPRoute>/<rule>/<canary Service>` (names are DNS labels: no `/`), or None."""
    parts = (recorded or "").split("/")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2]


def describe_restore_stable(a: CanaryAbort) -> PlanStep:
    d = a.deadlines
    first = (f"HTTPRoute {a.route[0]} rule {a.route[1]} back to {a.service} 100 % (match rule removed), accepted by "
             f"its parents, then " if a.route else "")
    return PlanStep("restore-stable", StepKind.CHANGE, f"Deployments {a.stable}, {a.canary}",
                    f"{first}scale {a.stable} to {a.total} and wait until ready, then {a.canary} to 0 and delete the "
                    f"baseline {baseline_name(a.stable)} if there is one; record the abort on Service {a.service} "
                    f"(step {a.aborted_step}, 0 %)",
                    gate=f"{a.total} of {a.total} replicas of {a.stable} ready within {d.ready_s:.0f} s before the "
                         f"canary goes; then only {a.stable}'s pods, all {a.total} ready, within {d.endpoints_s:.0f} s",
                    undo="not undone: a failed abort is reported (outcome failed), the stable left as it got")
