"""Every test in tests/e2e runs on a real cluster: mark it so, and fail (never skip) when the cluster is absent.

`prefect_ops`: prefect.yaml deployed on the session's Prefect server and one greenlight worker on the `greenlight`
pool (type greenlight; started once, shared by the tests that start releases the way the UI does).

`netns`: the local cluster's network namespace (the Service data path: kube-proxy and the pod-IP server);
`traffic`: a factory of TrafficChecks (tests/e2e/traffic.py) bound to it. The session's traffic totals are printed
in the terminal summary (tests/e2e/summary.py).

`gateway`: the local cluster's Gateway (tests/cluster/gateway.py), checked Programmed; a test needing it fails when it
is not (never skips)."""

import os

import pytest

from tests.e2e import proxy_metrics, summary
from tests.e2e.prefect_ops import ROOT, PrefectOps, Worker, deploy_all
from tests.e2e.traffic import TrafficCheck
from tests.parallel import worker_suffix

_RESOLVED: dict[str, str] = {}

EXTERNAL_TRAFFIC = (
    "the ClusterIP traffic check needs the local cluster's network namespace (kube-proxy + pod-IP server), and "
    "GREENLIGHT_TEST_KUBECONFIG names another cluster. On kind, traffic goes through kind's own kube-proxy: from a "
    "client pod inside the cluster, or through `kubectl port-forward svc/<name>` (tests/README.md)")


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
    worker = Worker(prefect_api, cluster.kubeconfig, logs / f"worker{worker_suffix()}.log")
    try:
        yield ops
    finally:
        worker.stop()


def resolve_netns(cluster) -> str:
    """The name of the local cluster's network namespace. GREENLIGHT_NETNS (printed by `make cluster`) is
    honoured, and must then name the running cluster's namespace. Missing: the test fails, never skips."""
    if not cluster.local:
        pytest.fail(EXTERNAL_TRAFFIC, pytrace=False)
    from tests.cluster import launcher, netplane

    running = launcher.status().get("netns")
    exported = os.environ.get("GREENLIGHT_NETNS")
    if exported and running and exported != running:
        pytest.fail(f"GREENLIGHT_NETNS={exported}, but the running cluster's namespace is {running} (an export "
                    "left from an earlier `make cluster`?)", pytrace=False)
    name = exported or running
    if not name or not netplane.netns_exists(name):
        pytest.fail(f"the local cluster's network namespace {name or '(none recorded)'} is missing: restart the "
                    "cluster (make cluster-down; make cluster)", pytrace=False)
    _RESOLVED["netns"] = name
    return name


@pytest.fixture(scope="session")
def netns(cluster) -> str:
    return resolve_netns(cluster)


@pytest.fixture(scope="session", autouse=True)
def _sampler_traffic(cluster):
    """Every EndpointSampler also sends ClusterIP traffic (tests/e2e/sampler.py). The namespace is resolved only
    when a sampler starts, so tests without one do not depend on it."""
    from tests.e2e import sampler

    def context() -> tuple[str, str]:
        return resolve_netns(cluster), cluster.kubeconfig

    sampler.TRAFFIC_CONTEXT = context
    yield
    sampler.TRAFFIC_CONTEXT = None
    summary.ran(proxy_metrics.lines(_RESOLVED.get("netns")))


@pytest.fixture
def traffic(netns, cluster):
    """traffic(namespace, service, port=None, **options) -> TrafficCheck (a context manager), see traffic.py."""

    def make(namespace: str, service: str, port: int | None = None, **options) -> TrafficCheck:
        return TrafficCheck(netns, cluster.kubeconfig, namespace, service, port, **options)

    return make


@pytest.fixture(scope="session")
def gateway(netns, cluster) -> str:
    """The netns, once the test Gateway is Programmed by the gateway (Traefik) running in it."""
    from tests.cluster import gateway as gw

    try:
        programmed = gw.gateway_programmed(cluster.kubeconfig)
    except Exception as exc:  # noqa: BLE001 - any failure to read it fails the test below
        pytest.fail(f"the test Gateway {gw.GATEWAY_NAMESPACE}/{gw.GATEWAY} cannot be read ({exc}): restart the "
                    "cluster (make cluster-down; make cluster)", pytrace=False)
    if not programmed:
        pytest.fail(f"the test Gateway {gw.GATEWAY_NAMESPACE}/{gw.GATEWAY} is not Programmed: is Traefik running "
                    "in the namespace? (make cluster-status)", pytrace=False)
    return netns
