"""Releases as deployment runs, the way the UI's Run button starts them: prefect.yaml's blue-green deployment on
the bench's Prefect server, work pools, workers (the greenlight worker, or Prefect's process worker for the
reference), flow runs created with `POST /deployments/{id}/create_flow_run`, their state history.

Workers run with the settings users get: the greenlight worker's own 2 s poll (GREENLIGHT_WORKER_POLL_S), the
process worker's PREFECT_WORKER_QUERY_SECONDS default (10 s) — PREFECT_WORKER_* is removed from their environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import requests
import yaml

from bench import harness
from bench.given import SERVICE1
from bench.harness import KUBECONFIG, PYTHON, TUTORIAL1, check, child_env

FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
GREENLIGHT_POOL, PROCESS_POOL = "greenlight", "bench-process"
POLL_ONLY_POOL = "bench-greenlight-poll"  # a greenlight worker without pick-up on events (the poll alone)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in child_env(GREENLIGHT_HOME=str(harness.CODE), **extra).items()
           if not k.startswith("PREFECT_WORKER_")}
    return env


def prefect_cli(*args: str, timeout: float = 300) -> None:
    # The image-pushed trigger releases nothing here: its allow-list Variable (greenlight_allowed_services) is unset.
    env = _env()
    out = subprocess.run([PYTHON, "-m", "prefect", *args], capture_output=True, text=True, env=env,
                         cwd=harness.CODE, timeout=timeout)
    check(out.returncode == 0, f"prefect {' '.join(args)} failed:\n{(out.stdout + out.stderr)[-3000:]}")


def deploy(api: str, process_pool: bool = False, poll_only_pool: bool = False) -> dict[str, str]:
    """Pool `greenlight` (type greenlight), prefect.yaml's blue-green deployment on it (`prefect --no-prompt
    deploy --name blue-green`), and optionally the same deployment copied to a process pool and to a second
    greenlight pool (as tests/e2e/prefect_ops.py copy_to_pool does). Returns {pool: deployment id}."""
    prefect_cli("work-pool", "create", GREENLIGHT_POOL, "--type", "greenlight", "--overwrite")
    prefect_cli("--no-prompt", "deploy", "--name", "blue-green")
    found = requests.post(f"{api}/deployments/filter", json={}, timeout=30)
    found.raise_for_status()
    dep = next(d for d in found.json() if d["name"] == "blue-green")
    ids = {GREENLIGHT_POOL: dep["id"]}
    copies = [(PROCESS_POOL, "process")] * process_pool + [(POLL_ONLY_POOL, "greenlight")] * poll_only_pool
    for pool, pool_type in copies:
        prefect_cli("work-pool", "create", pool, "--type", pool_type, "--overwrite")
        body = {"name": f"blue-green-{pool}", "flow_id": dep["flow_id"], "work_pool_name": pool,
                "entrypoint": dep["entrypoint"], "pull_steps": dep["pull_steps"], "path": dep.get("path"),
                "parameter_openapi_schema": dep["parameter_openapi_schema"],
                "enforce_parameter_schema": dep["enforce_parameter_schema"]}
        resp = requests.post(f"{api}/deployments/", json=body, timeout=30)
        check(resp.status_code in (200, 201), f"copy to {pool}: {resp.status_code} {resp.text[:500]}")
        ids[pool] = resp.json()["id"]
    return ids


class WorkerProc:
    """One worker process on `pool` (kind greenlight: `python -m prefect_greenlight.cli worker`; kind process:
    `prefect worker start --type process`), the cluster's kubeconfig in its environment."""

    def __init__(self, kind: str, pool: str, limit: int, log: Path, name: str | None = None, **env: str):
        self.kind, self.log_path = kind, log
        argv = ([PYTHON, "-m", "prefect_greenlight.cli", "worker", "--pool", pool, "--limit", str(limit),
                 *(["--name", name] if name else [])]
                if kind == "greenlight" else
                [PYTHON, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process", "--limit",
                 str(limit)])
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(argv, env=_env(KUBECONFIG=KUBECONFIG, **env), cwd=harness.CODE, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def peak_rss_mb(self) -> float:
        """VmHWM of the worker process (its peak resident set since it started)."""
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()

    def __enter__(self) -> "WorkerProc":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def parameters(namespace: str, extra_spec: dict | None = None) -> dict:
    """The first tutorial's release of `namespace` (green-dep.yaml, blue kept), as the UI's form sends it."""
    manifest = yaml.safe_load((TUTORIAL1 / "green-dep.yaml").read_text())
    return {"spec": {"namespace": namespace, "service": SERVICE1, "manifest": manifest, "cleanup": {"mode": "keep"},
                     **(extra_spec or {})}}


def create_run(api: str, deployment_id: str, params: dict) -> str:
    """POST /deployments/{id}/create_flow_run; retried while the server answers 429/503 (as Prefect's client)."""
    for attempt in range(8):
        resp = requests.post(f"{api}/deployments/{deployment_id}/create_flow_run",
                             json={"parameters": params, "tags": ["bench"]}, timeout=60)
        if resp.status_code not in (429, 503):
            break
        time.sleep(0.5 * 2 ** attempt)
    check(resp.status_code in (200, 201), f"create_flow_run: {resp.status_code} {resp.text[:1000]}")
    return resp.json()["id"]


def wait_final(api: str, run_ids: list[str], timeout_s: float, poll_s: float = 0.1) -> dict[str, tuple[str, float]]:
    """Poll (one POST /flow_runs/filter for all of them) every `poll_s` until every run is final; {run id: (state
    type, perf_counter when first seen final)}."""
    done: dict[str, tuple[str, float]] = {}
    deadline = time.monotonic() + timeout_s
    while True:
        left = [r for r in run_ids if r not in done]
        try:
            resp = requests.post(f"{api}/flow_runs/filter", timeout=30,
                                 json={"flow_runs": {"id": {"any_": left}}, "limit": 200})
            seen = resp.json() if resp.ok else []
        except requests.RequestException:
            seen = []
        now = time.perf_counter()
        for run in seen:
            st = (run.get("state") or {}).get("type", "")
            if st in FINAL:
                done[run["id"]] = (st, now)
        if len(done) == len(run_ids):
            return done
        check(time.monotonic() < deadline, f"{len(run_ids) - len(done)} flow runs not final after {timeout_s} s")
        time.sleep(poll_s)


def _ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def breakdown(api: str, run_id: str) -> dict:
    """From the run's state history (GET /flow_run_states/?flow_run_id=): created -> Pending (the worker's
    poll), Pending -> Running (start of the run's infrastructure and engine), Running -> final (the release)."""
    run = requests.get(f"{api}/flow_runs/{run_id}", timeout=30).json()
    states = requests.get(f"{api}/flow_run_states/", params={"flow_run_id": run_id}, timeout=30).json()
    first = {}
    for s in sorted(states, key=lambda s: _ts(s["timestamp"])):
        first.setdefault(s["type"], _ts(s["timestamp"]))
    created = _ts(run["created"])
    final = next((first[t] for t in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") if t in first), float("nan"))
    pending, running = first.get("PENDING", float("nan")), first.get("RUNNING", float("nan"))
    return {"created_to_pending_s": round(pending - created, 3), "pending_to_running_s": round(running - pending, 3),
            "running_to_final_s": round(final - running, 3), "created_to_final_s": round(final - created, 3),
            "states": [s["name"] for s in sorted(states, key=lambda s: _ts(s["timestamp"]))],
            "infrastructure_pid": run.get("infrastructure_pid")}
