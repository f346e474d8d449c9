"""A burst of flow runs created at once against the embedded SQLite server (issue 25): N
`POST /deployments/{id}/create_flow_run` at the same instant, each from a Prefect client of its own
(bench/burst_client.py), against a fresh `prefect server start` per configuration, all configurations in one run:

  prefect-defaults  SQLite, Prefect's server and client settings as shipped (5 client retries after 2, 4, ... 32 s,
                    jitter 0.2)
  server-timeouts   SQLite, the database timeouts raised (PREFECT_SERVER_DATABASE_TIMEOUT and
                    PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT 60 s), the client as shipped: does waiting longer
                    for the lock help?
  greenlight        SQLite, the server as shipped, the client retry greenlight sets for its own processes
                    (tasks/prefect_adapter/starting.py CLIENT_RETRY_DEFAULTS: 6 retries, jitter 0.5) and that
                    `make demo` exports
  postgres          a throw-away PostgreSQL (bench/harness.py), everything as shipped: the reference

Creation only: no worker, no cluster; the runs stay Scheduled. The deployment is prefect.yaml's blue-green (its
parameter schema validated on every create, as for a real release), the parameters those of the first tutorial's
release in a namespace of its own. Figures per configuration: runs created, calls refused in the end, calls whose
FIRST attempt was refused (what a caller without retries, e.g. the UI's Run, would have seen), every 503 answered
(the client's retries included; cross-checked against the server log, PREFECT_API_LOG_RETRYABLE_ERRORS), the
burst's wall (first call -> last answer) and each call's latency. Every run the clients report created must exist
on the server, and no other.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import requests

from bench import harness
from bench.concurrent import PATIENT_SMOKE, log_trouble
from bench.harness import PYTHON, check, child_env, prefect_server
from bench.results import Recorder, say, summary
from bench.workerbench import GREENLIGHT_POOL, deploy, parameters
from prefect_greenlight.tasks.prefect_adapter.starting import CLIENT_RETRY_DEFAULTS

REFUSED = frozenset({429, 503})
# What a configuration may set; anything of these inherited from the bench's own environment is removed first, so
# "as shipped" is Prefect's defaults and not the caller's shell.
CLIENT_KEYS = ("PREFECT_CLIENT_MAX_RETRIES", "PREFECT_CLIENT_RETRY_JITTER_FACTOR", "PREFECT_CLIENT_RETRY_EXTRA_CODES")
SERVER_KEYS = ("PREFECT_SERVER_DATABASE_TIMEOUT", "PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT",
               "PREFECT_API_DATABASE_TIMEOUT", "PREFECT_API_DATABASE_CONNECTION_TIMEOUT")

CONFIGS: dict[str, dict] = {
    "prefect-defaults": {"database": "sqlite", "server": {}, "client": {}},
    "server-timeouts": {"database": "sqlite", "client": {},
                        "server": {"PREFECT_SERVER_DATABASE_TIMEOUT": "60",
                                   "PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT": "60"}},
    "greenlight": {"database": "sqlite", "server": {}, "client": dict(CLIENT_RETRY_DEFAULTS)},
    "postgres": {"database": "postgres", "server": {}, "client": {}},
}


def client_environment(config: dict, base: dict[str, str]) -> dict[str, str]:
    """The callers' environment: `base` without any inherited client retry setting, plus the configuration's."""
    env = {k: v for k, v in base.items() if k not in CLIENT_KEYS}
    env.update(config["client"])
    return env


def inherited_settings(environ: dict[str, str]) -> list[str]:
    """Settings under test already set in the bench's environment: the server would inherit them."""
    return sorted(k for k in SERVER_KEYS if k in environ)


def tally(calls: list[dict], wall_s: float) -> dict:
    """One configuration's figures from its callers' records ({created, statuses, latency_s} per call)."""
    responses = [s for c in calls for s in c["statuses"]]
    return {"calls": len(calls), "created": sum(1 for c in calls if c["created"]),
            "refused_in_the_end": sum(1 for c in calls if not c["created"]),
            "first_attempt_refused": sum(1 for c in calls if c["statuses"][:1] and c["statuses"][0] in REFUSED),
            "responses_503": responses.count(503), "responses_429": responses.count(429),
            "attempts": len(responses), "max_attempts_one_call": max((len(c["statuses"]) for c in calls), default=0),
            "wall_s": round(wall_s, 3), "per_call_latency_s": summary([c["latency_s"] for c in calls]),
            "errors": sorted({c.get("error", "")[:160] for c in calls if not c["created"]})[:3]}


def runs_on_server(api: str, deployment_id: str) -> set[str]:
    r = requests.post(f"{api}/flow_runs/filter", timeout=60, json={
        "deployments": {"id": {"any_": [deployment_id]}}, "flow_runs": {"tags": {"all_": ["burst"]}}, "limit": 200})
    check(r.ok, f"flow run filter: HTTP {r.status_code}")
    return {run["id"] for run in r.json()}


def one_config(name: str, config: dict, n: int, workdir: Path) -> dict:
    """A fresh server in `config`, the deployment, then the burst."""
    with prefect_server(config["database"], settings=config["server"]) as server:
        deployment_id = deploy(server.url)[GREENLIGHT_POOL]
        params = workdir / f"{name}-params.json"
        params.write_text(json.dumps([parameters(f"burst-{i:02d}", PATIENT_SMOKE) for i in range(n)]))
        out = workdir / f"{name}-out.json"
        log = Path(server.home) / "server.log"
        offset = log.stat().st_size
        load_before = harness.load()
        env = client_environment(config, child_env())
        proc = subprocess.run([PYTHON, "-m", "bench.burst_client", server.url, deployment_id, str(n), str(params),
                               str(out)], env=env, cwd=harness.ROOT, capture_output=True, text=True, timeout=1800)
        check(proc.returncode == 0 and out.exists(), f"{name}: the callers failed:\n{proc.stderr[-3000:]}")
        data = json.loads(out.read_text())
        figures = tally(data["calls"], data["wall_s"])
        made = {c["id"] for c in data["calls"] if c["created"]}
        found = runs_on_server(server.url, deployment_id)
        check(found == made, f"{name}: {len(made)} runs reported created, {len(found)} on the server")
        figures.update(database=config["database"], server_settings=config["server"],
                       client_settings=data["client_settings"], server_log=log_trouble(log, offset),
                       load_before=load_before, load_after=harness.load())
    say(f"{name}: {figures['created']} of {n} created in {figures['wall_s']:.1f} s; first attempt refused "
        f"{figures['first_attempt_refused']}; 503s {figures['responses_503']} (server log "
        f"{figures['server_log']['retryable_503']}); refused in the end {figures['refused_in_the_end']}")
    return figures


def run(releases: int = 50, configs: list[str] | None = None, rounds: int = 1, tag: str = "") -> dict:
    """Every configuration, `rounds` times in turn (A B C D, A B C D, ...), so the shared machine's load drifts
    over all of them alike."""
    names = configs or list(CONFIGS)
    unknown = [c for c in names if c not in CONFIGS]
    check(not unknown, f"unknown configurations {unknown}; known: {list(CONFIGS)}")
    inherited = inherited_settings(dict(os.environ))
    check(not inherited, f"unset {inherited} first: the servers would inherit them")
    rec = Recorder("burst", 1800, tag)
    out: dict = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="greenlight-burst-") as tmp:
        for r in range(rounds):
            for name in names:
                say(f"round {r + 1}: {name} ({releases} creates at once, load {rec.note_load()})")
                out[name].append(one_config(name, CONFIGS[name], releases, Path(tmp)))
    rec.save(releases=releases, rounds=rounds, configurations=out)
    return out
