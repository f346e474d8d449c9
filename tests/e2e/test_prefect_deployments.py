"""prefect.yaml deploys against a real Prefect server: every deployment is created with its entrypoint, work pool
and (inactive) schedule. Also guards the fastapi pin (a newer fastapi breaks `prefect deploy` against the 3.8.8
server)."""

from __future__ import annotations

import os
import subprocess
import sys

import requests
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

    # Ask the session's server itself (an in-process Prefect client would use the settings captured at import).
    found = requests.post(f"{prefect_api}/deployments/filter", json={}, timeout=30)
    found.raise_for_status()
    deployed = {(d["name"], d["entrypoint"], d["work_pool_name"]): d for d in found.json()}
    wanted = {(d["name"], d["entrypoint"], d["work_pool"]["name"])
              for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    assert wanted <= set(deployed), sorted(deployed)
    blue_green = deployed[("blue-green", "flows/blue_green.py:blue_green_release", "greenlight")]
    assert [s["active"] for s in blue_green["schedules"]] == [False], "the example schedule stays off"
    # the spec model is the parameter schema: the UI renders a form from it and the server validates runs
    assert "BlueGreenSpec" in str(blue_green["parameter_openapi_schema"])
