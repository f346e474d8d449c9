"""Where a rollback goes, from the release record on the Service. Pure functions.

A rollback after a release goes back to the recorded previous Deployment. A second rollback finds the record
saying the live Deployment is itself one gone back to (switch-kind "rollback") and does nothing: it must not
toggle traffic back to the newer version. Going anywhere else (forward again to the newer version, or to a
Deployment the record does not name) takes an explicit `--to DEPLOYMENT`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from prefect_greenlight.tasks.decisions.annotations import ReleaseRecord
from prefect_greenlight.tasks.errors import BadInput


class SwitchKind(str, Enum):
    RELEASE = "release"
    ROLLBACK = "rollback"


class RollbackAction(str, Enum):
    SWITCH = "switch"  # move the selector to `target`
    ALREADY_SERVES = "already-serves"  # `target` is already what the Service selects: change nothing


@dataclass(frozen=True)
class RollbackChoice:
    action: RollbackAction
    target: str  # the Deployment that serves afterwards
    target_selector: dict[str, str]
    target_color: str
    from_deployment: str  # the Deployment serving now (the recorded live one when the selector selects several)
    from_color: str
    use_recorded_manifest: bool  # the target is the recorded previous: its manifest may re-create it
    message: str


def switch_kind_of(record: ReleaseRecord) -> SwitchKind:
    """The recorded kind; records written before the annotation existed: a rollback run's id says so."""
    if record.switch_kind in (SwitchKind.RELEASE.value, SwitchKind.ROLLBACK.value):
        return SwitchKind(record.switch_kind)
    return SwitchKind.ROLLBACK if record.release_id.startswith("rollback-") else SwitchKind.RELEASE


def _colors(target_selector: dict[str, str], current: dict[str, str]) -> tuple[str, str]:
    keys = sorted(k for k in current if target_selector.get(k) != current[k])
    return ",".join(target_selector[k] for k in keys), ",".join(current[k] for k in keys)


def _already(service: str, target: str, selector: dict[str, str], why: str) -> RollbackChoice:
    return RollbackChoice(RollbackAction.ALREADY_SERVES, target, dict(selector), "", target, "", False,
                          f"Deployment {target} already serves Service {service}{why}; nothing changed")


def _explicit(service: str, record: ReleaseRecord, current: dict[str, str], serving: list[str], to: str,
              to_labels: dict[str, str] | None) -> RollbackChoice:
    """`--to DEPLOYMENT`: anywhere that can take the traffic, by a selector made of its pod labels."""
    from_dep = serving[0] if len(serving) == 1 else record.live_deployment
    if serving == [to]:
        return _already(service, to, current, "")
    if to == record.previous_deployment:
        return RollbackChoice(RollbackAction.SWITCH, to, dict(record.previous_selector), record.previous_color,
                              from_dep, record.live_color, True, f"{from_dep} -> {to} (--to)")
    if to_labels is None:
        raise BadInput(f"--to: Deployment {to!r} not found (and it is not the recorded previous "
                       f"{record.previous_deployment!r}, whose manifest could re-create it)")
    missing = sorted(k for k in current if k not in to_labels)
    if missing:
        raise BadInput(f"--to: Deployment {to!r}'s pod labels {to_labels} lack the Service selector key(s) "
                       f"{missing}: Service {service!r} could never select it")
    target_selector = {k: to_labels[k] for k in current}
    if target_selector == current:
        raise BadInput(f"--to: Service {service!r} selector {current} already matches {to!r} and also "
                       f"{', '.join(serving)}: the selector cannot tell them apart")
    to_color, from_color = _colors(target_selector, current)
    return RollbackChoice(RollbackAction.SWITCH, to, target_selector, to_color, from_dep, from_color, False,
                          f"{from_dep} -> {to} (--to)")


def choose_rollback(service: str, record: ReleaseRecord, current: dict[str, str], serving: list[str],
                    to: str | None = None, to_labels: dict[str, str] | None = None) -> RollbackChoice:
    """Decide a rollback, or refuse (BadInput: nothing changed).

    `current`: the Service's selector; `serving`: the Deployments it selects now; `to`: the `--to` Deployment
    and `to_labels` its pod labels (None when it does not exist)."""
    if not record.previous_deployment or not record.previous_selector:
        raise BadInput(f"Service {service!r} has no greenlight release record to roll back to")
    if to:
        return _explicit(service, record, current, serving, to, to_labels)
    live, previous = record.live_deployment, record.previous_deployment
    if switch_kind_of(record) is SwitchKind.ROLLBACK:
        if serving == [live]:
            return _already(service, live, current, f" (gone back to by {record.release_id or 'a rollback'}"
                            f"{' at ' + record.switched_at if record.switched_at else ''}); to switch to "
                            f"{previous} give --to {previous}")
        raise BadInput(f"Service {service!r} selector {current} selects {serving or 'no Deployment'}, not "
                       f"{live!r} that its record says it was rolled back to: give --to DEPLOYMENT")
    if serving == [previous]:
        return _already(service, previous, current, "")
    return RollbackChoice(RollbackAction.SWITCH, previous, dict(record.previous_selector), record.previous_color,
                          live, record.live_color, True, f"{live} -> {previous}")
