"""The Get started page's first release and install block (docs/get-started.md), run exactly as written.

The first release: on the test cluster, whose kubeconfig is ~/.kube/config of a HOME made for the test, with the
session's Prefect server as PREFECT_API_URL (the page leaves that to the reader's environment), in namespace
`shop` holding the second tutorial's my-app-blue behind my-app-service.

The install block: in a copy of the checkout,
with a virtualenv's `python` and `pip` first on PATH (as in a shell where one is active), offline — pip finds
every package in the wheelhouse `make test` fills (PIP_NO_INDEX, PIP_FIND_LINKS), so the page's commands are not
changed to say so. The other commands of the page: tests/unit/test_get_started.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.e2e.release_helpers import TUTORIAL2, given_ready, selector
from tests.e2e.test_install import WHEELHOUSE
from tests.get_started import ROOT, blocks, first_release

INSTALL_START = "pip wheel"


def _checkout_copy(dest: Path) -> Path:
    """The repository's tracked and untracked-but-not-ignored files, as a user's checkout has them."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def test_the_install_block_runs_as_written(tmp_path):
    assert (WHEELHOUSE / ".complete").exists(), f"{WHEELHOUSE} is not filled: run `make wheelhouse`"
    install = next(cmds for lang, cmds in blocks() if lang == "bash" and cmds[0].startswith(INSTALL_START))
    checkout = _checkout_copy(tmp_path / "greenlight")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELHOUSE), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    outputs = []
    for cmd in install:
        out = subprocess.run(["bash", "-c", cmd], cwd=checkout, env=env, capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, f"`{cmd}` failed ({out.returncode}):\n{(out.stdout + out.stderr)[-3000:]}"
        outputs.append(out.stdout)
    assert outputs[-1].startswith("usage: greenlight"), outputs[-1][:500]
    greenlight = checkout / "my-project" / ".venv" / "bin" / "greenlight"
    assert greenlight.exists() and str(ROOT) not in greenlight.read_text(), "installed from the wheel, not editable"


def test_the_first_release_runs_as_written(cluster, kube, prefect_api, tmp_path):
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    shutil.copy(cluster.kubeconfig, home / ".kube" / "config")
    kube.core.create_namespace({"metadata": {"name": "shop", "labels": {"greenlight-test": "true"}}})
    try:
        for manifest in ("blue-deployment.yaml", "service.yaml"):
            subprocess.run([cluster.kubectl, f"--kubeconfig={cluster.kubeconfig}", "-n", "shop", "apply", "-f",
                            str(TUTORIAL2 / manifest)], check=True, capture_output=True, timeout=60)
        given_ready(kube, "shop", "my-app-blue")
        env = {**os.environ, "HOME": str(home), "PREFECT_API_URL": prefect_api,
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        env.pop("KUBECONFIG", None)
        script = "set -e\n" + "\n".join(first_release())
        out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
        assert "Service my-app-service" in out.stdout, out.stdout[-3000:]
        green = selector(kube, "shop", "my-app-service")
        assert green and green != {"app": "my-app", "version": "blue"}, green
        assert "my-app:v2.0.0" in out.stdout + out.stderr, out.stdout[-3000:]
    finally:
        kube.core.delete_namespace("shop", propagation_policy="Background")
