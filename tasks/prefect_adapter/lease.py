"""The Service's Lease (tasks/kube/lease.py) held by a Prefect flow run: the Lease names the running flow run, and a
release that takes an expired Lease over ends the dead holder's run (tasks/prefect_adapter/dead_runs.py), which
would otherwise stay Paused or Running forever.
"""

from __future__ import annotations

from prefect_greenlight.tasks.kube import lease
from prefect_greenlight.tasks.prefect_adapter.dead_runs import end_dead_run
from prefect_greenlight.tasks.record.history import current_run
from prefect_greenlight.tasks.record.report import say


class ServiceLock(lease.ServiceLock):
    """The per-Service lock of a release running as a Prefect flow run."""

    def current_run_id(self) -> str:
        return current_run()[0]

    def _end_dead_holder(self, previous: dict | None) -> None:
        """The dead holder's flow run (paused forever otherwise) gets its final state."""
        done = end_dead_run(previous, self.taker, self.me, self.run_id)
        if done:
            say(done)
