"""The release history's write (the entry and its patch: tasks/decisions/history.py): a guarded read-modify-write
(a `test` op on the resourceVersion) retried on conflict, so a concurrent change to the Service is never
overwritten.
"""

from __future__ import annotations

import logging

from prefect_greenlight.tasks.decisions.history import HistoryEntry, append, history_patch, read_history
from prefect_greenlight.tasks.errors import GuardFailed
from prefect_greenlight.tasks.kube.client import Kube, RetryPolicy, json_patch, read

log = logging.getLogger(__name__)


def record_release(kube: Kube, namespace: str, service: str, entry: HistoryEntry, attempts: int = 5) -> bool:
    """Add `entry` to the Service's history. False (logged) if it could not be written: the history is a report,
    and a release that already succeeded or rolled back must not fail because of it."""
    for _ in range(attempts):
        try:
            svc = read(kube, "Service", namespace, service, policy=RetryPolicy(budget_s=5))
            if svc is None:
                return False
            json_patch(kube, "Service", namespace, service, history_patch(svc, append(read_history(svc), entry)))
            return True
        except GuardFailed:
            continue  # the Service changed between read and patch: read again
        except Exception as exc:  # noqa: BLE001
            log.warning("could not record release %s in Service %s/%s history: %s", entry.release_id, namespace,
                        service, exc)
            return False
    log.warning("could not record release %s in Service %s/%s history: %d conflicting updates", entry.release_id,
                namespace, service, attempts)
    return False
