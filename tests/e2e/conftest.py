"""Every test in tests/e2e runs on a real cluster: mark it so, and fail (never skip) when the cluster is absent.

`prefect_ops`: prefect.yaml deployed on the session's Prefect server and one process worker on the `greenlight`
pool (started once, shared by the tests that start releases the way the UI does)."""

import pytest

from tests.e2e.prefect_ops import ROOT, PrefectOps, Worker, deploy_all


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def prefect_ops(prefect_api, cluster):
    deploy_all(prefect_api)
    ops = PrefectOps(prefect_api)
    ops.refresh()
    logs = ROOT / ".cache" / "test-logs"
    logs.mkdir(parents=True, exist_ok=True)
    worker = Worker(prefect_api, cluster.kubeconfig, logs / "worker.log")
    try:
        yield ops
    finally:
        worker.stop()
