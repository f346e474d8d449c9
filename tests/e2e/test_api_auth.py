"""Who may release: a Prefect server with API auth switched on (PREFECT_SERVER_API_AUTH_STRING, HTTP basic auth).
Its own server for this module (own PREFECT_HOME and SQLite, free loopback port), next to the session's. The CLI
with PREFECT_API_AUTH_STRING releases; without it, or with another one, it is refused in one line naming the
server and the setting, exits 2, and the cluster is unchanged. A worker with the credentials picks up a
`prefect deployment run` of the blue-green deployment and releases."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from prefect_greenlight.tasks.kube.client import read
from tests.conftest import start_prefect_server
from tests.e2e.prefect_ops import FINAL, PREFECT, prefect_env
from tests.e2e.prefect_ops import worker_command as ops_worker_command
from tests.e2e.release_helpers import (
    ROOT,
    TUTORIAL1,
    cli_env,
    replicas,
    resource_versions,
    selector,
    tutorial1,
    wait_until,
)

AUTH = "greenlight-admin:not-a-real-secret-7f3c"
SERVICE = "production-svc"
POOL = "greenlight"  # prefect.yaml's pool; on this module's own server
REFUSED = {True: "refused the request (HTTP 401 Unauthorized): the server has API auth switched on "
                 "(PREFECT_SERVER_API_AUTH_STRING); set PREFECT_API_AUTH_STRING='user:password' to the same value",
           False: "refused the credentials in PREFECT_API_AUTH_STRING (HTTP 401 Unauthorized): set it to the "
                  "server's PREFECT_SERVER_API_AUTH_STRING ('user:password')"}  # by "no auth string at all"


@dataclass(frozen=True)
class AuthServer:
    url: str
    home: Path

    def http(self) -> requests.Session:
        """An authenticated client (what PREFECT_API_AUTH_STRING makes Prefect's client send)."""
        session = requests.Session()
        session.auth = tuple(AUTH.split(":", 1))
        return session

    def env(self, base: dict[str, str], auth: str | None = AUTH) -> dict[str, str]:
        """`base` pointed at this server, with `auth` as PREFECT_API_AUTH_STRING (None: not set at all)."""
        env = {k: v for k, v in base.items() if k != "PREFECT_API_AUTH_STRING"}
        env.update(PREFECT_API_URL=self.url, PREFECT_HOME=str(self.home / "client"))
        if auth is not None:
            env["PREFECT_API_AUTH_STRING"] = auth
        return env

    def flow_runs(self, namespace: str) -> list[dict]:
        resp = self.http().post(f"{self.url}/flow_runs/filter", json={"limit": 200}, timeout=30)
        resp.raise_for_status()
        return [r for r in resp.json() if ((r.get("parameters") or {}).get("spec") or {}).get("namespace") == namespace]


@pytest.fixture(scope="module")
def auth_server() -> Iterator[AuthServer]:
    home = Path(tempfile.mkdtemp(prefix="greenlight-prefect-auth-"))
    with start_prefect_server(home, {"PREFECT_SERVER_API_AUTH_STRING": AUTH}) as url:
        server = AuthServer(url, home)
        # auth is on: the API refuses a request without the credentials, health stays open (probes)
        assert requests.post(f"{url}/flows/filter", json={}, timeout=30).status_code == 401
        assert requests.get(f"{url}/health", timeout=30).ok
        assert server.http().post(f"{url}/flows/filter", json={}, timeout=30).status_code == 200
        yield server
    shutil.rmtree(home, ignore_errors=True)


def _release(cluster, server: AuthServer, namespace: str, auth: str | None) -> subprocess.CompletedProcess:
    env = server.env(cli_env(cluster, server.url), auth)
    return subprocess.run([sys.executable, "-m", "prefect_greenlight.cli", "blue-green", "-n", namespace,
                           "--service", SERVICE, "--manifest", str(TUTORIAL1 / "green-dep.yaml"),
                           "--scale-down-delay", "1"], capture_output=True, text=True, timeout=240, env=env,
                          cwd=ROOT, check=False)


def test_the_cli_with_the_auth_string_releases(cluster, kube, namespace, kubectl, auth_server):
    tutorial1(kubectl, kube, namespace)
    out = _release(cluster, auth_server, namespace, AUTH)
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.startswith(f"released: Service {SERVICE} -> green-dep"), out.stdout[:1000]
    assert selector(kube, namespace, SERVICE) == {"target": "green-dep"}
    [run] = auth_server.flow_runs(namespace)
    assert run["state_type"] == "COMPLETED", run["state"]


@pytest.mark.parametrize("auth", [None, "greenlight-admin:wrong"], ids=["no-auth-string", "wrong-auth-string"])
def test_the_cli_without_the_right_auth_string_is_refused_and_changes_nothing(cluster, kube, namespace, kubectl,
                                                                             auth_server, auth):
    tutorial1(kubectl, kube, namespace)
    before = resource_versions(kube, namespace)
    out = _release(cluster, auth_server, namespace, auth)
    assert out.returncode == 2, (out.returncode, out.stderr[-4000:])
    assert out.stderr.splitlines() == [f"error: the Prefect server at {auth_server.url} {REFUSED[auth is None]}; "
                                       "nothing was started"], out.stderr[-4000:]
    assert out.stdout == ""
    assert AUTH not in out.stderr and (auth is None or auth not in out.stderr)  # no secret echoed
    assert resource_versions(kube, namespace) == before
    assert selector(kube, namespace, SERVICE) == {"target": "blue-dep"}
    assert read(kube, "Deployment", namespace, "green-dep") is None
    assert auth_server.flow_runs(namespace) == []  # no flow run was created either


def worker_command(pool: str) -> list[str]:
    """The worker for the auth server's pool: the greenlight worker (tests/e2e/prefect_ops.py worker_command)."""
    return ops_worker_command("greenlight", pool, limit=4)


def _prefect(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    out = subprocess.run([*PREFECT, *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT,
                         check=False)
    assert out.returncode == 0, f"prefect {' '.join(args)}: {(out.stdout + out.stderr)[-3000:]}"
    return out


def _wait_final(server: AuthServer, run_id: str, worker_log: Path, timeout: float = 240) -> dict:
    http = server.http()

    def final():
        resp = http.get(f"{server.url}/flow_runs/{run_id}", timeout=30)
        resp.raise_for_status()
        return resp.json() if resp.json().get("state_type") in FINAL else None

    try:
        return wait_until(f"flow run {run_id} to finish", final, timeout, 1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; worker log:\n{worker_log.read_text()[-4000:]}") from None


def test_a_worker_with_the_auth_string_runs_a_deployment_run(cluster, kube, namespace, kubectl, auth_server,
                                                            tmp_path):
    tutorial1(kubectl, kube, namespace)
    env = auth_server.env(prefect_env(auth_server.url, cluster.kubeconfig))
    _prefect(env, "work-pool", "create", POOL, "--type", "greenlight", "--overwrite")
    _prefect(env, "--no-prompt", "deploy", "--name", "blue-green")
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(worker_command(POOL), env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            manifest = yaml.safe_load((TUTORIAL1 / "green-dep.yaml").read_text())
            spec = {"namespace": namespace, "service": SERVICE, "manifest": manifest, "cleanup": {"delay_s": 1}}
            out = _prefect(env, "deployment", "run", "blue-green-release/blue-green", "--params",
                           json.dumps({"spec": spec}), timeout=120)
            run_id = re.search(r"UUID: ([0-9a-f-]{36})", out.stdout).group(1)
            run = _wait_final(auth_server, run_id, log_path)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(5)
    assert run["state_type"] == "COMPLETED", (run["state"], log_path.read_text()[-4000:])
    assert run["work_pool_name"] == POOL
    assert selector(kube, namespace, SERVICE) == {"target": "green-dep"}
    assert wait_until("blue-dep scaled to zero", lambda: replicas(kube, namespace, "blue-dep") == 0, 60, 0.5)
    refused = [line for line in log_path.read_text().splitlines()
               if re.search(r"\b401\b|Unauthorized", line.split(" | ", 1)[-1])]
    assert not refused, refused  # no HTTP 401 in the log (a timestamp's milliseconds may read 401: not counted)
