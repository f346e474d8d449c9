"""greenlight is a good citizen in its users' Prefect projects: installed into a virtualenv that already holds the
newest Prefect, it moves no installed version (it declares ranges, never pins), `pip check` stays clean, and a
user project of its own deploys greenlight's flows by module entrypoint and releases through the greenlight worker
of that virtualenv.

The virtualenv is made from this machine alone: Prefect, the Kubernetes client and their dependencies come from
the wheelhouse `make test` fills (`make wheelhouse`: the versions .venv resolved, i.e. the newest), greenlight
from a wheel built from this checkout.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e.prefect_ops import PrefectOps, Worker, api_call
from tests.e2e.release_helpers import ROOT, TUTORIAL1, selector, tutorial1
from tests.e2e.sampler import EndpointSampler
from tests.e2e.test_packaging import USER_PREFECT_YAML

WHEELHOUSE = Path(os.environ.get("GREENLIGHT_CACHE", ROOT / ".cache")) / "wheelhouse"
WATCHED = ("prefect", "fastapi", "pydantic", "kubernetes", "sqlalchemy", "starlette", "httpx")
POOL = "user-pool"


def _run(argv: list, env: dict | None = None, cwd: Path | None = None, timeout: float = 600):
    out = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env or dict(os.environ),
                         cwd=cwd, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(map(str, argv))[:300]}:\n{(out.stdout + out.stderr)[-3000:]}"
    return out.stdout


def _versions(python: Path) -> dict[str, str]:
    listed = json.loads(_run([python, "-m", "pip", "list", "--format=json"]))
    return {p["name"].lower(): p["version"] for p in listed}


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory) -> dict:
    """A user's virtualenv with the newest Prefect (from the wheelhouse), then greenlight's wheel installed into
    it with its dependencies resolved by pip; the versions before and after."""
    assert (WHEELHOUSE / ".complete").exists(), f"{WHEELHOUSE} is not filled: run `make wheelhouse`"
    tmp = tmp_path_factory.mktemp("install")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp / "dist", ROOT], timeout=300)
    wheel = next((tmp / "dist").glob("prefect_greenlight-*.whl"))
    venv = tmp / "user-venv"
    _run([sys.executable, "-m", "venv", venv])
    python, offline = venv / "bin" / "python", ["--no-index", "--find-links", WHEELHOUSE]
    newest = {name: importlib.metadata.version(name) for name in ("prefect", "kubernetes")}
    _run([python, "-m", "pip", "install", "-q", *offline, *(f"{n}=={v}" for n, v in newest.items())])
    before = _versions(python)
    _run([python, "-m", "pip", "install", "-q", *offline, wheel])
    return {"venv": venv, "python": python, "newest": newest, "before": before, "after": _versions(python)}


def test_installing_the_wheel_beside_the_newest_prefect_moves_nothing(user_venv):
    before, after = user_venv["before"], user_venv["after"]
    assert before["prefect"] == user_venv["newest"]["prefect"]
    watched = {name: (before.get(name), after.get(name)) for name in WATCHED}
    print(f"\n[install] versions before -> after installing the wheel: {watched}")
    assert all(b == a for b, a in watched.values()), watched
    moved = {name: (v, after.get(name)) for name, v in before.items() if after.get(name) != v}
    assert not moved, f"installing greenlight changed installed versions: {moved}"
    assert after["prefect-greenlight"] == importlib.metadata.version("prefect-greenlight")
    _run([user_venv["python"], "-m", "pip", "check"])


def test_a_user_project_deploys_by_module_path_and_releases_through_the_worker(
        user_venv, cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    tutorial1(kubectl, kube, namespace)
    project = tmp_path / "user-project"
    project.mkdir()
    (project / "prefect.yaml").write_text(USER_PREFECT_YAML.format(project=project, name="release-web", pool=POOL))
    bin_dir = user_venv["venv"] / "bin"
    env = {**{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
           "PREFECT_API_URL": prefect_api, "KUBECONFIG": cluster.kubeconfig,
           "PATH": f"{bin_dir}:{os.environ['PATH']}", "PREFECT_WORKER_QUERY_SECONDS": "1"}
    _run([bin_dir / "prefect", "work-pool", "create", POOL, "--type", "greenlight", "--overwrite"], env, project)
    _run([bin_dir / "prefect", "--no-prompt", "deploy", "--all"], env, project)
    deployments = api_call("POST", f"{prefect_api}/deployments/filter",
                           json={"deployments": {"name": {"any_": ["release-web"]}}}).json()
    [deployment] = deployments
    assert deployment["entrypoint"] == "prefect_greenlight.flows.blue_green:blue_green_release"
    worker = Worker(prefect_api, cluster.kubeconfig, tmp_path / "user-worker.log", pool=POOL,
                    command=[bin_dir / "greenlight", "worker", "--pool", POOL], env=env)
    try:
        spec = {"namespace": namespace, "service": "production-svc",
                "manifest": yaml.safe_load((TUTORIAL1 / "green-dep.yaml").read_text()),
                "cleanup": {"mode": "keep", "delay_s": 0}}
        with EndpointSampler(kube, namespace, "production-svc") as sampler:
            run = api_call("POST", f"{prefect_api}/deployments/{deployment['id']}/create_flow_run",
                           json={"parameters": {"spec": spec}}).json()
            assert PrefectOps(prefect_api).wait_state(run["id"], {"COMPLETED"}, 240) == "COMPLETED"
    finally:
        worker.stop()
    assert sampler.zero_ready_instants() == 0, sampler.describe()
    assert selector(kube, namespace, "production-svc") == {"target": "green-dep"}
    infra = PrefectOps(prefect_api).flow_run(run["id"])["infrastructure_pid"]
    assert f":{worker.proc.pid}:" in infra, f"run by {infra}, not the user virtualenv's worker {worker.proc.pid}"
