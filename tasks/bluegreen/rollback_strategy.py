"""`greenlight rollback` as a list of steps (the release engine, tasks/engine/), after read-record (which decides
where it goes, like blue-green's preflight):

  restore -> wait-ready -> (route-switch) -> switch -> verify-endpoints -> (route-back) -> autoscaler -> cleanup

The route steps when the release record names the HTTPRoute a `traffic: gateway` release switched through
(tasks/bluegreen/gateway.py): the route moves to a Service selecting the target first, then the selector, then
the route back on the Service.

A rollback is itself the undo: a failed step is reported, nothing is undone, the outcome recorded "failed"
(tasks/engine/report_only.py: execute_reporting). The dry run describes this same list
(tasks/decisions/describe_rollback.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from prefect_greenlight.tasks.bluegreen.gateway import route_home, route_to_green
from prefect_greenlight.tasks.bluegreen.restore import (
    Rollback,
    restore_autoscaler,
    restore_target,
    retire_rolled_back,
    switch_to_target,
    verify_target,
)
from prefect_greenlight.tasks.decisions.describe_rollback import (
    RollbackFacts,
    describe_autoscaler,
    describe_cleanup,
    describe_read_record,
    describe_restore,
    describe_route_back,
    describe_route_switch,
    describe_switch,
    describe_verify,
    describe_wait_ready,
    rollback_summary,
)
from prefect_greenlight.tasks.decisions.plan import Plan, PlanFacts
from prefect_greenlight.tasks.engine.executor import Release
from prefect_greenlight.tasks.engine.report_only import reporting, said
from prefect_greenlight.tasks.engine.steps import Step, plan_of
from prefect_greenlight.tasks.kube.client import read
from prefect_greenlight.tasks.kube.observe import endpoint_counts
from prefect_greenlight.tasks.kube.waiting import require_ready
from prefect_greenlight.tasks.record.report import say
from prefect_greenlight.tasks.spec import Cleanup, Deadlines


@dataclass(kw_only=True)
class RollbackRelease(Release):
    """The running rollback, as its steps see it: the engine's Release and what read-record found."""

    rb: Rollback

    def record_failed(self, reason: str) -> None:
        """A failed rollback: recorded "failed", from the live Deployment to the target, no images."""
        rb = self.rb
        self.journal.finish("failed", from_deployment=rb.choice.from_deployment, to_deployment=rb.choice.target,
                            images=[], after=endpoint_counts(self.kube, rb.namespace, rb.service), reason=reason)


def _wait_ready(release: RollbackRelease) -> str:
    rb = release.rb
    return require_ready(release.kube, rb.namespace, rb.choice.target, rb.deadlines, progress=say)


def _switch(release: RollbackRelease) -> str:
    """The selector PATCH; from here to verified nothing else of the run's own competes (progress held)."""
    release.journal.hold_progress()
    return said(switch_to_target(release.kube, release.rb, release.handed_on.get("endpoints"), release.handed_on))


def _verify(release: RollbackRelease) -> str:
    try:
        return verify_target(release.kube, release.rb, release.handed_on.get("endpoints"), release.handed_on)
    finally:
        release.journal.send_held_progress()


def _target_pods(release: RollbackRelease) -> int:
    rb = release.rb
    return int(((read(release.kube, "Deployment", rb.namespace, rb.choice.target) or {}).get("spec") or {}).get(
        "replicas") or 0)


def _route_switch(release: RollbackRelease) -> str:
    rb = release.rb
    return route_to_green(release.kube, rb.namespace, rb.route, rb.choice.target, _target_pods(release),
                          rb.deadlines.endpoints_s)


def _route_back(release: RollbackRelease) -> str:
    rb = release.rb
    return route_home(release.kube, rb.namespace, rb.route, rb.choice.target, _target_pods(release),
                      rb.deadlines.endpoints_s)


def rollback_steps(route: bool = False) -> list[Step]:
    """Steps 2-7, in order (`route`: the record names an HTTPRoute to go back through). What each acts on is the
    release's `rb`."""
    return [
        reporting("restore", lambda rel: said(restore_target(rel.kube, rel.rb)), describe_restore, changes=True),
        reporting("wait-ready", _wait_ready, describe_wait_ready),
        *([reporting("route-switch", _route_switch, describe_route_switch, changes=True)] if route else []),
        reporting("switch", _switch, describe_switch, changes=True),
        reporting("verify-endpoints", _verify, describe_verify),
        *([reporting("route-back", _route_back, describe_route_back, changes=True)] if route else []),
        reporting("autoscaler", lambda rel: restore_autoscaler(rel.kube, rel.rb), describe_autoscaler,
                  changes=True),
        reporting("cleanup", lambda rel: said(retire_rolled_back(rel.kube, rel.rb)), describe_cleanup,
                  changes=True),
    ]


def rollback_plan(f: RollbackFacts, cleanup: Cleanup, deadlines: Deadlines, target_has_hpa: bool,
                  found: PlanFacts) -> Plan:
    """The dry run: read-record, then the very list `rollback_steps` gives the run, each step described."""
    f = dataclasses.replace(f, cleanup=cleanup, deadlines=deadlines, target_has_hpa=target_has_hpa)
    namespace = (f.service.get("metadata") or {}).get("namespace", "")
    plan = plan_of("rollback", namespace, f.service["metadata"]["name"], rollback_summary(f),
                   rollback_steps(route=f.route is not None), f,
                   found)
    return dataclasses.replace(plan, steps=(describe_read_record(f), *plan.steps))
