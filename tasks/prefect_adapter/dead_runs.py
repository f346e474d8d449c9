"""No run stays Paused forever: the Prefect side of a release whose process died.

- `end_dead_run`: a release, abort or rollback that took over an expired Lease sets the flow run the Lease named
  (`greenlight.io/flow-run-id`) to a final state, Crashed or Cancelled, with a message naming what took over
  (decisions in tasks/decisions/lease.py). A run that already ended is left alone. Never raises: the release
  that took over goes on whatever Prefect answers.
- `require_answerable`: `greenlight approve/reject/promote RUN_ID` answer only a paused run whose process is alive
  (its Lease names it and is renewed); otherwise they exit 1 saying so and answer nothing.
"""

from __future__ import annotations

import logging
import time

from prefect.client.orchestration import get_client
from prefect.states import Cancelled, Crashed

from prefect_greenlight.tasks.decisions.lease import (
    DeadRunEnd,
    answerable,
    dead_run_message,
    end_of_dead_run,
    lease_run_id,
)
from prefect_greenlight.tasks.errors import GreenlightError
from prefect_greenlight.tasks.kube.client import RetryPolicy, connect, read

log = logging.getLogger(__name__)


class ProcessGone(GreenlightError):
    """The paused run's release process is gone (or the run is not paused): an answer would reach nobody."""


def end_dead_run(previous_lease: dict | None, taker: str, taker_identity: str, taker_run_id: str) -> str:
    """Set the flow run of a taken-over Lease's dead holder to its final state; returns what was done ("" when
    there was nothing to do)."""
    run_id = lease_run_id(previous_lease)
    if not run_id or run_id == taker_run_id:
        return ""
    meta, spec = (previous_lease or {}).get("metadata") or {}, (previous_lease or {}).get("spec") or {}
    message = dead_run_message(meta.get("name", "?"), spec.get("holderIdentity") or "", taker, taker_identity,
                               taker_run_id)
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(run_id)
            end = end_of_dead_run(run.state.type.value if run.state else "", taker)
            if end is None:
                return ""
            state = (Crashed if end is DeadRunEnd.CRASHED else Cancelled)(message=message)
            client.set_flow_run_state(run_id, state, force=True)
        return f"flow run {run_id} ({run.state.name if run.state else '?'}) set {end.value}: {message}"
    except Exception as exc:  # noqa: BLE001 - a report; the release that took over must not fail on it
        log.warning("could not end the dead flow run %s: %s", run_id, exc)
        return ""


def _read_run(run_id: str):
    try:
        with get_client(sync_client=True) as client:
            return client.read_flow_run(run_id)
    except Exception as exc:  # unknown id, unreachable API
        raise ProcessGone(f"flow run {run_id}: cannot read it from Prefect ({type(exc).__name__}: "
                          f"{str(exc)[:200]})") from exc


def answer_credentials(params: dict, kubeconfig: str | None, context: str | None,
                       cluster_config: str | None) -> tuple[str | None, str | None, str | None]:
    """(kubeconfig, context, cluster_config) to read a run's Lease with: the flags given, else the run's own
    parameters. A flag naming one source replaces the run's other one (a kubeconfig flag and the run's block are
    not both used)."""
    if kubeconfig or cluster_config:
        return kubeconfig, context or params.get("context"), cluster_config
    return params.get("kubeconfig"), context or params.get("context"), params.get("cluster_config")


def require_answerable(run_id: str, kubeconfig: str | None = None, context: str | None = None,
                       warn=log.warning, cluster_config: str | None = None) -> str:
    """Raise ProcessGone unless `run_id` is paused and its release process still renews its Lease. Returns what
    was checked; when the cluster cannot be asked, `warn`s and lets the answer through."""
    run = _read_run(run_id)
    state = run.state
    if state is None or not state.is_paused():
        name = state.name if state else "without a state"
        raise ProcessGone(f"flow run {run_id} is {name}, not paused: nothing answered"
                          f"{' (' + state.message + ')' if state and state.message else ''}")
    params = run.parameters or {}
    spec = params.get("spec") if isinstance(params.get("spec"), dict) else {}
    namespace, service = (spec or {}).get("namespace"), (spec or {}).get("service")
    if not namespace or not service:
        warn(f"flow run {run_id} names no Service: cannot tell whether its release process lives; answering")
        return "unchecked"
    lease_name = f"greenlight-{service}"
    try:
        kube = connect(*answer_credentials(params, kubeconfig, context, cluster_config))
        lease = read(kube, "Lease", namespace, lease_name, policy=RetryPolicy(budget_s=5))
    except Exception as exc:  # noqa: BLE001 - no cluster access here: answer, with a warning
        warn(f"cannot read Lease {namespace}/{lease_name} ({type(exc).__name__}: {str(exc)[:160]}): cannot tell "
             "whether the release process lives; answering")
        return "unchecked"
    verdict = answerable(lease, lease_name, run_id, time.time())
    if not verdict.ok:
        raise ProcessGone(f"flow run {run_id} is paused but {verdict.why}: nothing answered. Run the release "
                          "again (it takes the Lease over and ends this run), or `greenlight abort`/`rollback`")
    return verdict.why
