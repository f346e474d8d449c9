"""Test harness shared by both tiers.

- `cluster`: the local control plane (started if it is not up, stopped at the end if this session started it),
  or the cluster named by GREENLIGHT_TEST_KUBECONFIG. An e2e test that cannot reach its cluster FAILS.
- `kube`, `namespace`: a client, and a fresh namespace per test (deleted afterwards).
- `prefect_api`: one real Prefect server per test session (SQLite, temporary PREFECT_HOME, free localhost port).

Under pytest-xdist every worker is such a session, with a cluster of its own (tests/parallel.py).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import parallel

ROOT = Path(__file__).resolve().parents[1]
parallel.one_cluster_per_worker(ROOT)  # before tests.cluster is imported (its state directory is read at import)


def pytest_sessionfinish(session):
    """An xdist worker hands its e2e figures to the controller (tests/e2e/summary.py)."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        from tests.e2e import summary

        summary.hand_over(output)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    from tests.e2e import summary

    summary.take_over(node.gateway.id, getattr(node, "workeroutput", None) or {})


def pytest_terminal_summary(terminalreporter):
    from tests.e2e import summary

    found = summary.lines()
    if found:
        terminalreporter.write_sep("-", "ClusterIP traffic (tests/e2e/traffic.py)")
        for line in found:
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(config, items):
    """Under xdist, the slowest files first (tests/parallel.py); every worker sorts the same collection alike."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: parallel.file_rank(Path(str(item.fspath)).relative_to(ROOT).as_posix()))


@dataclass(frozen=True)
class ClusterInfo:
    kubeconfig: str
    kubectl: str
    local: bool  # the launcher's cluster (fault images and the app plane are available)


@pytest.fixture(scope="session")
def cluster() -> ClusterInfo:
    external = os.environ.get("GREENLIGHT_TEST_KUBECONFIG")
    if external:
        kubectl = shutil.which("kubectl") or ""
        from tests.cluster.launcher import Binaries

        if Binaries.from_cache().kubectl.exists():
            kubectl = str(Binaries.from_cache().kubectl)
        yield ClusterInfo(external, kubectl, local=False)
        return
    from tests.cluster import launcher

    started_here = not launcher.status()["up"]
    try:
        info = launcher.up()
    except BaseException as exc:  # noqa: BLE001 - an unreachable cluster is a failure, never a skip
        pytest.fail(f"could not start the local test cluster: {exc}", pytrace=False)
    try:
        yield ClusterInfo(info["kubeconfig"], info["kubectl"], local=True)
    finally:
        if started_here and not os.environ.get("GREENLIGHT_KEEP_CLUSTER"):
            launcher.down()


@pytest.fixture(scope="session")
def kube(cluster):
    from prefect_greenlight.tasks.kube.client import connect

    k = connect(cluster.kubeconfig)
    try:
        k.core.list_namespace(limit=1, _request_timeout=(5, 10))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"cluster at {cluster.kubeconfig} is unreachable: {exc}", pytrace=False)
    return k


@pytest.fixture
def namespace(kube, request):
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = f"t-{name}-{uuid.uuid4().hex[:5]}"
    kube.core.create_namespace({"metadata": {"name": name, "labels": {"greenlight-test": "true"}}})
    # Pods need the namespace's default ServiceAccount (made by the controller-manager).
    deadline = time.monotonic() + 30
    while not kube.core.list_namespaced_service_account(name).items:
        if time.monotonic() > deadline:
            pytest.fail(f"namespace {name}: no default ServiceAccount after 30 s", pytrace=False)
        time.sleep(0.1)
    yield name
    kube.core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def kubectl(cluster, namespace):
    """Run the built kubectl against the test cluster in the test's namespace."""

    def run(*args: str, check: bool = True, timeout: float = 60, stdin: str | None = None):
        proc = subprocess.run([cluster.kubectl, f"--kubeconfig={cluster.kubeconfig}", "-n", namespace, *args],
                              capture_output=True, text=True, timeout=timeout, input=stdin)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    return run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def start_prefect_server(home: Path, extra_env: dict[str, str] | None = None):
    """A real `prefect server start` (API + UI, SQLite under `home`) on a free localhost port; yields the API URL
    and stops the server on exit (the database stays in `home`). `extra_env`: server settings on top (e.g.
    PREFECT_SERVER_API_AUTH_STRING; its /health stays open, so the start check needs no credentials)."""
    import requests

    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": url,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_API_URL": url,
           "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port), **(extra_env or {})}
    log = open(home / "server.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Prefect server did not start: see {home}/server.log", pytrace=False)
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.fixture(scope="session")
def prefect_api():
    """One Prefect server (API + UI, SQLite) for the whole session, in a throw-away PREFECT_HOME."""
    home = Path(tempfile.mkdtemp(prefix="greenlight-prefect-"))
    with start_prefect_server(home) as url:
        # For subprocesses (the CLI). Prefect captures its settings at import, so in-process code that needs this
        # server must be given the URL explicitly (tests talk to it over HTTP).
        saved = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "PREFECT_HOME")}
        os.environ.update(PREFECT_API_URL=url, PREFECT_HOME=str(home))
        try:
            yield url
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    shutil.rmtree(home, ignore_errors=True)
