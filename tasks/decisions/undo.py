"""Whether an undo step is safe (the stack that runs them: tasks/engine/undo.py): each undo step re-reads the
cluster and decides with these, so a failed switch-back can never be followed by removing the version that is
still serving; and whether a cancelled run means undo.
"""

from __future__ import annotations

from prefect_greenlight.tasks.decisions.colors import pod_labels, selector_matches


def may_remove(service: dict | None, deployment: dict | None) -> tuple[bool, str]:
    """A Deployment may be scaled down or deleted only while the Service does not select its pods."""
    if deployment is None:
        return True, "already gone"
    if service is None:
        return True, "the Service is gone"
    selector = service.get("spec", {}).get("selector") or {}
    if selector_matches(selector, pod_labels(deployment)):
        return False, (f"Service {service['metadata']['name']} still selects {deployment['metadata']['name']} "
                       f"({selector}); refusing to remove it")
    return True, "not selected by the Service"


def may_switch_back(blue: dict | None, blue_name: str) -> tuple[bool, str]:
    """Switching back is only safe when blue has ready pods to take the traffic."""
    if blue is None:
        return False, f"Deployment {blue_name} no longer exists"
    status = blue.get("status") or {}
    ready = int(status.get("readyReplicas") or 0)
    desired = int((blue.get("spec") or {}).get("replicas", 1))
    if ready == 0:
        return False, f"Deployment {blue_name} has 0 of {desired} ready replicas; switching back would drop traffic"
    return True, f"{ready} of {desired} {blue_name} replicas ready"


CANCEL_STATES = frozenset({"CANCELLING", "CANCELLED"})


def cancel_means_undo(terminated: bool, intent: str | None, run_state: str | None) -> bool:
    """Whether an interruption of a release is a cancel, so the release must undo its changes before it ends.

    `terminated`: the release was interrupted by Prefect's TerminationSignal (the worker's SIGTERM). `intent`: what
    the worker's runner said over its control channel before the SIGTERM ("cancel", "reschedule", "relinquish", or
    None when it said nothing). `run_state`: the flow run's state type as the API shows it now (None: unknown).
    A reschedule or relinquish (the worker handing the run over) is never a cancel: the next attempt converges.
    Without an intent (the control channel could not deliver it) the API's CANCELLING state decides."""
    if not terminated or intent in ("reschedule", "relinquish"):
        return False
    return intent == "cancel" or run_state in CANCEL_STATES
