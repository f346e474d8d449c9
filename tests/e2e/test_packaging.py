"""greenlight installs one namespaced import package, prefect_greenlight, so a user's own `flows` and `tasks`
packages (a Prefect project almost always has them; Celery and invoke projects have `tasks`) never shadow ours.

Given a throwaway project whose `flows/` and `tasks/` modules raise on import, first on sys.path and as the
working directory, greenlight still works: from the editable install (`make test`'s) and from a wheel
installed into a fresh virtualenv.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.e2e.prefect_ops import PREFECT, prefect_env
from tests.e2e.release_helpers import ROOT, TUTORIAL1, resource_versions, selector, tutorial1
from tests.e2e.sampler import EndpointSampler

pytestmark = pytest.mark.usefixtures("prefect_api")

SHADOWING = {
    "tasks/__init__.py": "",
    "tasks/kube.py": "raise ImportError('the user project tasks/kube.py was imported')\n",
    "tasks/spec.py": "raise ImportError('the user project tasks/spec.py was imported')\n",
    "tasks/errors.py": "raise ImportError('the user project tasks/errors.py was imported')\n",
    "flows/__init__.py": "",
    "flows/cli.py": "raise ImportError('the user project flows/cli.py was imported')\n",
    "flows/blue_green.py": "raise ImportError('the user project flows/blue_green.py was imported')\n",
}


@pytest.fixture
def user_project(tmp_path) -> Path:
    project = tmp_path / "user-project"
    for rel, text in SHADOWING.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)
    return project


def _env(cluster, prefect_api: str, project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "PYTHONPATH": str(project), "KUBECONFIG": cluster.kubeconfig, "PREFECT_API_URL": prefect_api}


def _run(argv: list[str], env: dict, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def _dry_run_argv(greenlight: Path, namespace: str) -> list[str]:
    return [str(greenlight), "blue-green", "-n", namespace, "--service", "production-svc",
            "--manifest", str(TUTORIAL1 / "green-dep.yaml"), "--dry-run"]


def _given_the_user_packages_shadow(python: str, env: dict, project: Path) -> None:
    probe = _run([python, "-c", "import tasks.kube"], env, project)
    assert probe.returncode != 0 and "user project tasks/kube.py" in probe.stderr, probe.stderr


def _assert_help_and_dry_run(greenlight: Path, python: str, env: dict, project: Path, kube, namespace) -> None:
    _given_the_user_packages_shadow(python, env, project)
    helped = _run([str(greenlight), "--help"], env, project)
    assert helped.returncode == 0, helped.stderr
    assert "blue-green" in helped.stdout and "canary" in helped.stdout
    before = resource_versions(kube, namespace)
    dry = _run(_dry_run_argv(greenlight, namespace), env, project)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "dry run: would release green-dep" in dry.stdout + dry.stderr
    assert resource_versions(kube, namespace) == before


def test_cli_ignores_a_users_flows_and_tasks_packages(cluster, prefect_api, kube, namespace, kubectl, user_project):
    tutorial1(kubectl, kube, namespace)
    greenlight = Path(sys.executable).parent / "greenlight"
    _assert_help_and_dry_run(greenlight, sys.executable, _env(cluster, prefect_api, user_project), user_project,
                             kube, namespace)


RELEASE_FROM_PYTHON = """
import sys
sys.path.insert(0, {project!r})
from prefect_greenlight.flows.blue_green import blue_green_release
from prefect_greenlight.tasks.spec import BlueGreenSpec
import yaml
manifest = yaml.safe_load(open({manifest!r}))
spec = BlueGreenSpec(namespace={namespace!r}, service="production-svc", manifest=manifest,
                     cleanup={{"mode": "keep", "delay_s": 0}})
result = blue_green_release(spec=spec, kubeconfig={kubeconfig!r})
print("OUTCOME", result["outcome"], result["live_deployment"])
"""


def test_flow_imported_from_python_releases_beside_a_users_packages(cluster, prefect_api, kube, namespace, kubectl,
                                                                    user_project):
    tutorial1(kubectl, kube, namespace)
    env = _env(cluster, prefect_api, user_project)
    _given_the_user_packages_shadow(sys.executable, env, user_project)
    code = RELEASE_FROM_PYTHON.format(project=str(user_project), manifest=str(TUTORIAL1 / "green-dep.yaml"),
                                      namespace=namespace, kubeconfig=cluster.kubeconfig)
    with EndpointSampler(kube, namespace, "production-svc") as sampler:
        out = _run([sys.executable, "-c", code], env, user_project, timeout=240)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert sampler.zero_ready_instants() == 0, sampler.describe()
    assert "OUTCOME released green-dep" in out.stdout
    assert selector(kube, namespace, "production-svc") == {"target": "green-dep"}


def _fresh_venv_with_wheel(tmp_path: Path) -> Path:
    """A new virtualenv with nothing but the wheel built from this checkout. Its dependencies (prefect,
    kubernetes, ...) are taken from the test virtualenv through a .pth line instead of being downloaded again;
    the test virtualenv holds greenlight only as an editable finder, which a .pth line does not activate."""
    wheels = tmp_path / "wheels"
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels),
                  str(ROOT)], dict(os.environ), tmp_path, timeout=300)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    wheel = next(wheels.glob("prefect_greenlight-*.whl"))
    _assert_wheel_holds_every_module(wheel)
    venv = tmp_path / "fresh-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = _run([str(venv / "bin" / "pip"), "install", "--no-deps", "--no-index", str(wheel)],
                     dict(os.environ), tmp_path, timeout=300)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    site = Path(_run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     dict(os.environ), tmp_path).stdout.strip())
    (site / "test-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv


def _assert_wheel_holds_every_module(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"prefect_greenlight/{p.relative_to(ROOT)}" for top in ("flows", "tasks", "cli")
                for p in (ROOT / top).rglob("*.py")}
    assert expected - names == set(), f"missing from the wheel: {sorted(expected - names)}"
    assert not [n for n in names if n.split("/")[0] in ("flows", "tasks", "cli", "tests")], sorted(names)[:20]


def test_wheel_in_a_fresh_virtualenv_ignores_a_users_packages(cluster, prefect_api, kube, namespace, kubectl,
                                                               user_project, tmp_path):
    tutorial1(kubectl, kube, namespace)
    venv = _fresh_venv_with_wheel(tmp_path)
    env = _env(cluster, prefect_api, user_project)
    where = _run([str(venv / "bin" / "python"), "-c", "import prefect_greenlight.cli.main as m; print(m.__file__)"],
                 env, user_project)
    assert where.returncode == 0, where.stderr
    assert where.stdout.startswith(str(venv)), f"imported from {where.stdout.strip()}, not the wheel"
    _assert_help_and_dry_run(venv / "bin" / "greenlight", str(venv / "bin" / "python"), env, user_project,
                             kube, namespace)


USER_PREFECT_YAML = """
name: user-project
pull:
- prefect.deployments.steps.set_working_directory:
    directory: {project}
deployments:
- name: {name}
  entrypoint: prefect_greenlight.flows.blue_green:blue_green_release
  work_pool:
    name: {pool}
  enforce_parameter_schema: true
"""


def test_pip_installed_flow_deploys_from_a_users_project_by_module_path(cluster, prefect_ops, kube, namespace,
                                                                       kubectl, user_project):
    """The README's way for a user who only `pip install`ed greenlight: a module-path entrypoint in their own
    prefect.yaml. The run executes in their project directory, beside their own flows/ and tasks/."""
    tutorial1(kubectl, kube, namespace)
    (user_project / "prefect.yaml").write_text(USER_PREFECT_YAML.format(project=user_project, name="blue-green-from-package", pool="greenlight"))
    env = {k: v for k, v in prefect_env(prefect_ops.api).items() if k != "PYTHONPATH"}
    out = _run([*PREFECT, "--no-prompt", "deploy", "--all"], env, user_project, timeout=300)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    prefect_ops.refresh()
    deployment = prefect_ops.deployments["blue-green-from-package"]
    assert deployment["entrypoint"] == "prefect_greenlight.flows.blue_green:blue_green_release"
    assert "BlueGreenSpec" in str(deployment["parameter_openapi_schema"])
    manifest = (TUTORIAL1 / "green-dep.yaml").read_text()
    with EndpointSampler(kube, namespace, "production-svc") as sampler:
        run_id = prefect_ops.run("blue-green-from-package", {"spec": {
            "namespace": namespace, "service": "production-svc", "manifest": yaml.safe_load(manifest),
            "cleanup": {"mode": "keep", "delay_s": 0}}})
        assert prefect_ops.wait_state(run_id, {"COMPLETED", "FAILED", "CRASHED"}) == "COMPLETED", \
            prefect_ops.logs(run_id)[-3000:]
    assert sampler.zero_ready_instants() == 0, sampler.describe()
    assert selector(kube, namespace, "production-svc") == {"target": "green-dep"}
