"""No server configured: `greenlight blue-green ... --dry-run` as a new user types it (no PREFECT_API_URL, no
Prefect profile) runs on Prefect's temporary server and the terminal shows one line saying so and how to point at
a real server, then only the release's own output: no telemetry call, no "Error logging to API", no Prefect
server banner."""

from __future__ import annotations

import os
import subprocess
import sys

from prefect_greenlight.cli.no_server import NOTICE
from tests.e2e.release_helpers import ROOT, TUTORIAL1, tutorial1


def test_a_release_without_a_server_says_so_in_one_line_and_nothing_else(cluster, kube, namespace, kubectl,
                                                                         tmp_path):
    tutorial1(kubectl, kube, namespace)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DO_NOT_TRACK"))}
    env.update(HOME=str(tmp_path), KUBECONFIG=cluster.kubeconfig)  # a new user: no ~/.prefect yet
    out = subprocess.run([sys.executable, "-m", "prefect_greenlight.cli", "blue-green", "-n", namespace, "--service",
                          "production-svc", "--manifest", str(TUTORIAL1 / "green-dep.yaml"), "--dry-run"],
                         capture_output=True, text=True, timeout=300, env=env, cwd=ROOT, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("plan (blue-green, 9 steps): green-dep replaces blue-dep"), out.stdout[:500]
    lines = out.stderr.splitlines()
    assert lines[0] == NOTICE, out.stderr
    others = [line for line in lines[1:] if " | INFO    | Flow run '" not in line]
    assert others == [], out.stderr  # the release's own progress lines, nothing else
    for noise in ("telemetry", "Error logging to API", "All connection attempts failed", "temporary server on"):
        assert noise not in out.stderr + out.stdout, out.stderr
    assert (tmp_path / ".prefect" / "prefect.db").exists()  # the temporary server kept the run, as Prefect does
