"""A flow run scheduled for later, through Prefect's public API (`prefect.deployments.run_deployment` with a
`scheduled_time` and `timeout=0`: the run is created Scheduled and this call returns at once). The run lives in
the Prefect server, so it happens whether or not the process that scheduled it, or the worker that will run it,
restarts in between: any worker of the deployment's pool picks it up when it is due.

Used for the rollback window's clean-up (tasks/bluegreen/window.py): the release does not sleep the window.
"""

from __future__ import annotations

import os
from datetime import datetime

from prefect.deployments import run_deployment

from prefect_greenlight.tasks.errors import PermanentError

# The deployment whose run cleans up after a rollback window (prefect.yaml); another name through the environment.
WINDOW_CLEANUP = "blue-green-window-cleanup/window-cleanup"


def window_cleanup_deployment() -> str:
    return os.environ.get("GREENLIGHT_WINDOW_CLEANUP_DEPLOYMENT") or WINDOW_CLEANUP


def schedule_run(deployment: str, parameters: dict, at: datetime, name: str) -> str:
    """Create a flow run of `deployment` Scheduled for `at`; returns its id. PermanentError naming the deployment
    when Prefect cannot create it (no such deployment: `prefect deploy --all`; no server)."""
    try:
        run = run_deployment(deployment, parameters=parameters, scheduled_time=at, timeout=0, as_subflow=False,
                             flow_run_name=name, tags=["greenlight", "rollback-window"])
    except Exception as exc:  # noqa: BLE001 - any failure means: nothing is scheduled, say so
        raise PermanentError(f"could not schedule a run of deployment {deployment!r} for {at.isoformat()}: "
                             f"{type(exc).__name__}: {str(exc)[:300]} (is prefect.yaml deployed? `prefect deploy "
                             "--all`)") from exc
    return str(run.id)
