"""prefect.yaml deploys against a real Prefect server: every deployment is created with its entrypoint, work pool
and (inactive) schedule. Also guards the fastapi pin (a newer fastapi breaks `prefect deploy` against the 3.8.8
server)."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from tests.e2e.release_helpers import ROOT


def test_prefect_yaml_deploys_every_flow(prefect_api):
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "GREENLIGHT_HOME": str(ROOT)}
    prefect = [sys.executable, "-m", "prefect"]
    pool = subprocess.run([*prefect, "work-pool", "create", "greenlight", "--type", "process", "--overwrite"],
                          capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    assert pool.returncode == 0, pool.stdout + pool.stderr
    out = subprocess.run([*prefect, "--no-prompt", "deploy", "--all"], capture_output=True, text=True, env=env,
                         timeout=300, cwd=ROOT)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        deployed = {(d.name, d.entrypoint, d.work_pool_name) for d in client.read_deployments()}
        scheduled = client.read_deployment_by_name("blue-green-release/blue-green")
    wanted = {(d["name"], d["entrypoint"], d["work_pool"]["name"])
              for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    assert wanted <= deployed
    assert [s.active for s in scheduled.schedules] == [False], "the example schedule stays off until switched on"
