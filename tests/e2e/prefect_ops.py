"""Prefect as users run it: `prefect deploy --all` from prefect.yaml, a greenlight worker on the `greenlight` pool
(type greenlight; a process worker where a test asks for one), flow runs created through the server's HTTP API
(what the UI's "Run" button does), their states and events.

Tests talk to the session's server over HTTP: an in-process Prefect client would use the settings captured at
import, not the session server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from prefect_greenlight.tasks.decisions.allow import parse_patterns
from tests.e2e.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
# The image-pushed trigger's allow-list: this Prefect Variable, read when a triggered run starts. The session
# deploys with it unset (nothing allowed); a test that needs the trigger allows its own namespace (`allowing`).
ALLOW_VARIABLE = "greenlight_allowed_services"


def prefect_env(api: str, kubeconfig: str | None = None) -> dict[str, str]:
    env = {**os.environ, "PREFECT_API_URL": api, "GREENLIGHT_HOME": str(ROOT),
           "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "1"}
    if kubeconfig:
        env["KUBECONFIG"] = kubeconfig
    return env


def create_pool(api: str, name: str, kind: str) -> None:
    pool = subprocess.run([*PREFECT, "work-pool", "create", name, "--type", kind, "--overwrite"],
                          capture_output=True, text=True, env=prefect_env(api), timeout=120, cwd=ROOT)
    assert pool.returncode == 0, pool.stdout + pool.stderr


def deploy_all(api: str) -> None:
    """What the README tells users to do: a greenlight work pool and `prefect deploy --all`, with nothing set for
    the image-pushed trigger's allow-list (the Variable ALLOW_VARIABLE stays unset: the trigger releases nothing)."""
    create_pool(api, "greenlight", "greenlight")
    out = subprocess.run([*PREFECT, "--no-prompt", "deploy", "--all"], capture_output=True, text=True,
                         env=prefect_env(api), timeout=300, cwd=ROOT)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]


BUSY = (429, 503)  # the server's answers while SQLite is locked by concurrent writers; Prefect's client retries them


def api_call(method: str, url: str, json: dict | None = None, attempts: int = 6) -> requests.Response:
    """One request to the session's server, retried with backoff while it answers 429/503, as Prefect's own
    client does (the session's releases and workers write to its SQLite at the same time); the caller checks the
    final answer."""
    for attempt in range(attempts - 1):
        resp = requests.request(method, url, json=json, timeout=30)
        if resp.status_code not in BUSY:
            return resp
        time.sleep(0.5 * 2 ** attempt)
    return requests.request(method, url, json=json, timeout=30)


def all_flow_runs(api: str, body: dict | None = None, page: int = 200) -> list[dict]:
    """Every flow run matching the filter `body`, page by page (the server answers at most `page` per request:
    a session's server holds more runs than that by the time late tests read it)."""
    runs: list[dict] = []
    while True:
        resp = api_call("POST", f"{api}/flow_runs/filter", json={"sort": "ID_DESC", **(body or {}), "limit": page,
                                                                "offset": len(runs)})
        resp.raise_for_status()
        runs += resp.json()
        if len(resp.json()) < page:
            return runs


def allow_variable(api: str, name: str = ALLOW_VARIABLE) -> object:
    """The value of the allow-list Variable (or another), None when it is unset (GET /variables/name/{name})."""
    resp = api_call("GET", f"{api}/variables/name/{name}")
    if resp.status_code == 404:
        return None
    resp.raise_for_status()
    return resp.json()["value"]


def set_allow_variable(api: str, value: object, name: str = ALLOW_VARIABLE) -> None:
    """Set the allow-list Variable (or another) through Prefect's REST API, as the UI does; None unsets it."""
    url = f"{api}/variables/name/{name}"
    if value is None:
        resp = api_call("DELETE", url)
        assert resp.status_code in (204, 404), f"{resp.status_code}: {resp.text[:1000]}"
        return
    resp = api_call("PATCH", url, json={"value": value})
    if resp.status_code == 404:
        resp = api_call("POST", f"{api}/variables/", json={"name": name, "value": value})
    assert resp.status_code in (201, 204), f"{resp.status_code}: {resp.text[:1000]}"


@contextmanager
def allowing(api: str, *patterns: str) -> Iterator[None]:
    """The image-pushed trigger may release `patterns` (added to the Variable) inside the block; afterwards the
    Variable is as it was. One server serves all of a session's tests: each allows only its own namespace."""
    before = allow_variable(api)
    set_allow_variable(api, ",".join([*parse_patterns(before), *patterns]))
    try:
        yield
    finally:
        set_allow_variable(api, before)


@dataclass
class PrefectOps:
    api: str
    deployments: dict[str, dict] = field(default_factory=dict)

    def refresh(self) -> None:
        found = api_call("POST", f"{self.api}/deployments/filter", json={})
        found.raise_for_status()
        self.deployments = {d["name"]: d for d in found.json()}

    def create_run(self, deployment: str, parameters: dict, tags: list[str] | None = None) -> requests.Response:
        """POST /deployments/{id}/create_flow_run, as the UI does; the caller checks the response."""
        dep = self.deployments[deployment]
        return api_call("POST", f"{self.api}/deployments/{dep['id']}/create_flow_run",
                        json={"parameters": parameters, "tags": tags or []})

    def copy_to_pool(self, deployment: str, pool: str, entrypoint: str | None = None, name: str | None = None) -> str:
        """The prefect.yaml deployment `deployment` once more, as `<deployment>-<pool>` on work pool `pool` (what
        `prefect deploy` would create from the same entry with another work_pool); returns its name."""
        dep = self.deployments[deployment]
        name = name or f"{deployment}-{pool}"
        body = {"name": name, "flow_id": dep["flow_id"], "work_pool_name": pool,
                "entrypoint": entrypoint or dep["entrypoint"],
                "pull_steps": dep["pull_steps"], "parameter_openapi_schema": dep["parameter_openapi_schema"],
                "enforce_parameter_schema": dep["enforce_parameter_schema"], "path": dep.get("path")}
        resp = api_call("POST", f"{self.api}/deployments/", json=body)
        assert resp.status_code in (200, 201), f"{resp.status_code}: {resp.text[:2000]}"
        self.refresh()
        return name

    def run(self, deployment: str, parameters: dict) -> str:
        resp = self.create_run(deployment, parameters)
        assert resp.status_code in (200, 201), f"{resp.status_code}: {resp.text[:2000]}"
        return resp.json()["id"]

    def cancel(self, run_id: str) -> None:
        """What the UI's Cancel button and `prefect flow-run cancel` do: set the run CANCELLING; the worker that
        runs it then delivers the cancel to the run's process."""
        resp = api_call("POST", f"{self.api}/flow_runs/{run_id}/set_state",
                        json={"state": {"type": "CANCELLING", "name": "Cancelling"}, "force": True})
        resp.raise_for_status()
        assert resp.json()["status"] == "ACCEPT", resp.text

    def flow_run(self, run_id: str) -> dict:
        resp = api_call("GET", f"{self.api}/flow_runs/{run_id}")
        resp.raise_for_status()
        return resp.json()

    def state(self, run_id: str) -> str:
        return (self.flow_run(run_id).get("state") or {}).get("type", "")

    def wait_state(self, run_id: str, wanted: set[str], timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.state(run_id)
            if state in wanted:
                return state
            if state in FINAL:
                break
            time.sleep(0.5)
        raise AssertionError(f"flow run {run_id} is {state}, not {sorted(wanted)}; logs:\n{self.logs(run_id)[-4000:]}")

    def flow_runs(self, deployment: str) -> list[dict]:
        dep = self.deployments[deployment]
        resp = api_call("POST", f"{self.api}/flow_runs/filter", json={"deployments": {"id": {"any_": [dep["id"]]}}})
        resp.raise_for_status()
        return resp.json()

    def logs(self, run_id: str, page: int = 200) -> str:
        """Every log line of the run so far, oldest first (paged: a long release logs more than one page)."""
        lines: list[str] = []
        while True:
            resp = api_call("POST", f"{self.api}/logs/filter", json={
                "logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC", "limit": page,
                "offset": len(lines)})
            resp.raise_for_status()
            batch = [entry["message"] for entry in resp.json()]
            lines += batch
            if len(batch) < page:
                return "\n".join(lines)

    def logs_with(self, run_id: str, *texts: str, timeout: float = 20) -> str:
        """The run's logs once they hold every one of `texts`: logs reach the API in batches (every 2 s), so a
        run's final state may come before its last lines."""
        def complete() -> str | None:
            logs = self.logs(run_id)
            return logs if all(t in logs for t in texts) else None

        return wait_for(f"{list(texts)} in the logs of {run_id}", complete, timeout, 0.5,
                        explain=lambda: self.logs(run_id)[-3000:])

    def artifacts(self, run_id: str) -> list[dict]:
        resp = api_call("POST", f"{self.api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}})
        resp.raise_for_status()
        return resp.json()

    def events(self, prefix: str, resource_id: str | None = None, timeout: float = 0) -> list[dict]:
        """Events whose name starts with `prefix` (optionally about one resource), oldest first."""
        body: dict = {"filter": {"event": {"prefix": [prefix]}, "order": "ASC"}, "limit": 50}
        if resource_id:
            body["filter"]["resource"] = {"id": [resource_id]}
        deadline = time.monotonic() + timeout
        while True:
            resp = api_call("POST", f"{self.api}/events/filter", json=body)
            resp.raise_for_status()
            found = resp.json()["events"]
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(0.5)


def worker_command(kind: str, pool: str, limit: int = 60) -> list[str]:
    """`greenlight worker` (the greenlight worker type, releases in threads of one process) or Prefect's own
    `prefect worker start --type process` (a process per flow run)."""
    if kind == "greenlight":
        return [sys.executable, "-m", "prefect_greenlight.cli", "worker", "--pool", pool, "--limit", str(limit)]
    return [*PREFECT, "worker", "start", "--pool", pool, "--type", kind, "--limit", str(limit)]


class Worker:
    """A worker on `pool`, with the cluster's kubeconfig in its environment (`env`: more variables; None unsets one)."""

    def __init__(self, api: str, kubeconfig: str, log_path: Path, kind: str = "greenlight", pool: str = "greenlight",
                 env: dict[str, str | None] | None = None, command: list | None = None):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        argv = [str(a) for a in command] if command else worker_command(kind, pool)
        environ = {k: v for k, v in {**prefect_env(api, kubeconfig), **(env or {})}.items() if v is not None}
        self.proc = subprocess.Popen(argv, env=environ,
                                     cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a node failure would: nothing of the worker runs after this."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()
