"""Who may release: an event-driven blue-green release (the image-pushed trigger) runs only for the Services of its
allow-list, the Prefect Variable the trigger names (read when the run starts, so it can be changed in the UI
without a redeploy) or a literal list fixed at deploy time. The decision is pure (tasks/decisions/allow.py); here
the Variable is read and a refusal is made visible."""

from __future__ import annotations

from prefect_greenlight.tasks.decisions.allow import check_allowed, resolve_allow_list, variable_to_read
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.prefect_adapter.variables import read_variable
from prefect_greenlight.tasks.record.events import ReleaseEvent, emit
from prefect_greenlight.tasks.spec import BlueGreenSpec


def refuse_unless_allowed(spec: BlueGreenSpec, allowed_services: str | None,
                           allow_list_variable: str | None) -> None:
    """An event-driven release outside its allow-list (the Prefect Variable `allow_list_variable`, read now, or a
    literal deploy-time `allowed_services`) is refused (exit 2 / run Failed), visibly: a
    `greenlight.release.refused` event about the Service whose payload says how to allow it."""
    refuse_unless_listed(spec.namespace, spec.service, "blue-green", allowed_services, allow_list_variable,
                         image=spec.image)


def refuse_unless_listed(namespace: str, service: str, strategy: str, allowed_services: str | None,
                         allow_list_variable: str | None, **payload: object) -> None:
    """The allow-list check of any event-driven run (a release, an alert's rollback) of `namespace/service`."""
    name = variable_to_read(allowed_services, allow_list_variable)
    allow = resolve_allow_list(allowed_services, allow_list_variable, read_variable(name) if name else None)
    verdict = check_allowed(namespace, service, allow)
    if verdict.allowed:
        return
    emit(ReleaseEvent.REFUSED, namespace, service, reason=verdict.reason, how=verdict.how,
         command=verdict.command or None, source=allow.source.value, variable=allow.variable,
         allowed=allow.listed, strategy=strategy, **payload)
    raise BadInput(f"refused: {verdict.reason}. {verdict.how}")
