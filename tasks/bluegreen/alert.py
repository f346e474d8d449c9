"""Rollback on an alert (issue 24): an event `greenlight.alert` (Alertmanager through a small receiver, or `prefect
event emit`) names a Service; the `greenlight-alert-rollback` trigger of prefect.yaml starts the rollback flow with
`alert` set. It rolls back only a Service of the allow-list (the Prefect Variable greenlight_allowed_services) and
only inside its rollback window, while the previous version is still warm (a selector switch only). Outside the
window nothing changes, and a `greenlight.release.refused` event says why."""

from __future__ import annotations

from datetime import datetime, timezone

from prefect_greenlight.tasks.bluegreen.allowed import refuse_unless_listed
from prefect_greenlight.tasks.decisions.annotations import read_record
from prefect_greenlight.tasks.decisions.window import WindowVerdict, read_window, window_state
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.kube.client import Kube, read
from prefect_greenlight.tasks.record.events import ReleaseEvent, emit
from prefect_greenlight.tasks.record.report import say

WINDOW_RULE = "rollback-window"


def alert_window(kube: Kube, namespace: str, service: str, alert: str, allowed_services: str | None,
                 allow_list_variable: str | None) -> WindowVerdict:
    """Whether an alert may roll `namespace/service` back now. Refused (BadInput, with the event) when the Service
    is not allow-listed; a verdict that is not open is returned after its event (the caller changes nothing)."""
    refuse_unless_listed(namespace, service, "rollback", allowed_services, allow_list_variable, asked_by=alert)
    svc = read(kube, "Service", namespace, service)
    if svc is None:
        raise BadInput(f"Service {service!r} not found in namespace {namespace!r}")
    verdict = window_state(read_window(svc), read_record(svc), datetime.now(timezone.utc))
    if verdict.open:
        say(f"alert {alert}: inside the rollback window ({verdict.reason}): rolling back")
        return verdict
    reason = (f"alert {alert} did not roll Service {namespace}/{service} back: outside its rollback window "
              f"({verdict.state.value}: {verdict.reason}); nothing was changed")
    emit(ReleaseEvent.REFUSED, namespace, service, reason=reason, rule=WINDOW_RULE, refusal=verdict.state.value,
         strategy="rollback", asked_by=alert)
    say(reason)
    return verdict
