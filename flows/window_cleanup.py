"""The end of a rollback window (issue 24): a run of this flow is scheduled in Prefect by the release that opened
the window (tasks/bluegreen/window.py `open_window`), for the window's end. It lives in the Prefect server, so a
worker that restarts in between runs it when it is due.

  1. read the window      the window recorded on the Service (greenlight.io/rollback-window) and the release record
  2. decide               ended: take blue out of service as configured (scale to 0, or record and delete);
                          rolled back to blue, or another release since: nothing is taken out of service
  3. forget the window    the annotation goes, so `greenlight status` no longer shows it

It takes the Service's Lease like a release (so it never races one), and it never touches a Deployment the
Service selects.
"""

from __future__ import annotations

from prefect import flow

from prefect_greenlight.tasks.bluegreen.window import close_window
from prefect_greenlight.tasks.kube.client import connect
from prefect_greenlight.tasks.prefect_adapter.lease import ServiceLock
from prefect_greenlight.tasks.record.report import say

LOCK_WAIT_S = 3600.0  # a release running at the window's end (an approval pause) goes first


@flow(name="blue-green-window-cleanup", log_prints=True)
def window_cleanup(namespace: str, service: str, release_id: str, kubeconfig: str | None = None,
                   context: str | None = None, cluster_config: str | None = None) -> dict:
    """Take the warm blue of release `release_id` out of service once its rollback window has ended.

    Args:
        release_id: The release whose window this run closes; a newer window on the Service is left alone.
    """
    kube = connect(kubeconfig, context, cluster_config)
    with ServiceLock(kube, namespace, service, f"window-{release_id}", wait_s=LOCK_WAIT_S):
        message = close_window(kube, namespace, service, release_id)
    say(message)
    return {"namespace": namespace, "service": service, "release_id": release_id, "message": message}
