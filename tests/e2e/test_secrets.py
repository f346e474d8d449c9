"""Credentials never leak: releases (a success each way, and a failure with its rollback) run with a
ServiceAccount token kubeconfig and with a kubeconfig embedding a client certificate and key; neither the token
(nor any of its three parts) nor any certificate or key material (the base64 of the kubeconfig fields, or any line
of the PEM bodies) may appear in the CLI's stdout/stderr, in the Prefect flow run (its parameters, state
messages), its task runs, its logs, its artifacts or its events. The same for releases whose credentials come
from a Prefect KubernetesClusterConfig block holding the token kubeconfig (CLI `--cluster-block`, and the flow
called with `cluster_config`); a missing block is refused (exit 2; its flow run Failed, nothing changed)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e.prefect_dump import flow_runs_of, record_of
from tests.e2e.release_helpers import ROOT, TUTORIAL1, cli_env, greenlight, selector, tutorial1
from tests.e2e.sampler import EndpointSampler

pytestmark = pytest.mark.usefixtures("prefect_api")
SVC = "production-svc"


def token_kubeconfig(cluster, kubectl, tmp_path) -> tuple[str, str]:
    """A kubeconfig holding only the `greenlight` ServiceAccount's token (deployments/rbac.yaml); and the token."""
    kubectl("apply", "-f", str(ROOT / "deployments" / "rbac.yaml"))
    token = kubectl("create", "token", "greenlight", "--duration=1h").stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "sa", "clusters": admin["clusters"],
              "users": [{"name": "greenlight", "user": {"token": token}}],
              "contexts": [{"name": "sa", "context": {"cluster": admin["clusters"][0]["name"], "user": "greenlight"}}]}
    path = tmp_path / "token.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return str(path), token


def embedded_cert_kubeconfig(cluster, tmp_path) -> tuple[str, list[bytes]]:
    """The admin kubeconfig with its CA, client certificate and key embedded as *-data fields (as most real
    kubeconfigs carry them); and the raw PEM of the certificate and the key."""
    doc = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    user = doc["users"][0]["user"]
    cert, key = Path(user.pop("client-certificate")).read_bytes(), Path(user.pop("client-key")).read_bytes()
    user["client-certificate-data"] = base64.b64encode(cert).decode()
    user["client-key-data"] = base64.b64encode(key).decode()
    ca = doc["clusters"][0]["cluster"]
    ca["certificate-authority-data"] = base64.b64encode(Path(ca.pop("certificate-authority")).read_bytes()).decode()
    path = tmp_path / "cert.kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return str(path), [cert, key]


def needles_of_token(token: str) -> list[str]:
    header, payload, signature = token.split(".")
    return [token, payload, signature]


def needles_of_pem(pem: bytes) -> list[str]:
    """The base64 of the whole PEM (a kubeconfig's *-data) and every full line of its base64 body."""
    body = [ln for ln in pem.decode().splitlines() if ln and not ln.startswith("-----")]
    return [base64.b64encode(pem).decode(), *[ln for ln in body if len(ln) >= 32]]


def leaks(haystack: str, needles: list[str]) -> list[str]:
    return [n[:12] + "…" for n in needles if n in haystack]


def test_no_credential_reaches_output_logs_parameters_or_artifacts(cluster, prefect_api, kube, namespace, kubectl,
                                                                   tmp_path):
    tutorial1(kubectl, kube, namespace)
    token_cfg, token = token_kubeconfig(cluster, kubectl, tmp_path)
    cert_cfg, pems = embedded_cert_kubeconfig(cluster, tmp_path)
    needles = needles_of_token(token) + [n for pem in pems for n in needles_of_pem(pem)]
    assert len(needles) > 10

    runs = [  # (kubeconfig, arguments, expected exit code)
        (token_cfg, ["--manifest", str(TUTORIAL1 / "green-dep.yaml")], 0),                    # blue -> green
        (cert_cfg, ["--image", "scubakiz/servicedemo:3.0"], 0),                               # green -> blue
        (token_cfg, ["--image", "scubakiz/servicedemo:fault-pullerror", "--ready-timeout", "30"], 1),  # rolled back
    ]
    outputs = []
    with EndpointSampler(kube, namespace, SVC) as sampler:
        for kubeconfig, args, code in runs:
            r = greenlight(cluster, prefect_api, "blue-green", "--kubeconfig", kubeconfig, "-n", namespace, "--service",
                           SVC, "--scale-down-delay", "0", "--json", *args)
            assert r.returncode == code, r.stderr[-3000:]
            outputs.append(r.stdout + r.stderr)
    assert sampler.zero_ready_instants() == 0, sampler.describe()
    assert selector(kube, namespace, SVC) == {"target": "blue-dep"}, "the last release was rolled back"

    for text in outputs:
        assert not leaks(text, needles), f"credential in CLI output: {leaks(text, needles)}"
    recorded = flow_runs_of(prefect_api, "blue-green-release", namespace)
    assert len(recorded) == 3, [r["name"] for r in recorded]
    states = sorted((r.get("state") or {}).get("type") for r in recorded)
    assert states == ["COMPLETED", "COMPLETED", "FAILED"], states
    searched = []
    for run in recorded:
        rec = record_of(prefect_api, run["id"])
        searched.append(f"{rec.log_count} logs/{rec.artifact_count} artifacts/{rec.event_count} events")
        # the search covers real content: parameters name the namespace, logs and artifacts the Deployments
        assert rec.log_count > 5 and rec.artifact_count >= 1, (rec.log_count, rec.artifact_count)
        assert namespace in rec.flow_run and "green-dep" in rec.logs and "blue-dep" in rec.artifacts
        for part in ("flow_run", "task_runs", "logs", "artifacts", "events"):
            found = leaks(getattr(rec, part), needles)
            assert not found, f"credential in flow run {run['name']} {part}: {found}"
        assert "token.kubeconfig" in rec.flow_run or "cert.kubeconfig" in rec.flow_run, \
            "the kubeconfig parameter is recorded as a path (not its content)"
    print(f"\n[secrets] {len(needles)} needles, 3 CLI outputs, 3 flow runs searched: {'; '.join(searched)}")


def save_cluster_block(prefect_api: str, name: str, kubeconfig: str) -> None:
    """Save a KubernetesClusterConfig block holding `kubeconfig` on the session's server (a subprocess: Prefect
    reads PREFECT_API_URL once, at import), as the README tells a user to."""
    code = ("import sys; from prefect_kubernetes.credentials import KubernetesClusterConfig as K; "
            "K.from_file(sys.argv[1]).save(sys.argv[2], overwrite=True)")
    r = subprocess.run([sys.executable, "-c", code, kubeconfig, name], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PREFECT_API_URL": prefect_api})
    assert r.returncode == 0, r.stderr[-3000:]


def without_kubeconfig(cluster, prefect_api: str) -> dict[str, str]:
    """The CLI's environment with $KUBECONFIG naming no file: whatever connects must do so through the block."""
    return {**cli_env(cluster, prefect_api), "KUBECONFIG": "/nonexistent/kubeconfig"}


FLOW_CALL = """import json, sys
from prefect_greenlight.flows.blue_green import blue_green_release
from prefect_greenlight.tasks.spec import BlueGreenSpec
spec = BlueGreenSpec.model_validate(json.loads(sys.argv[1]))
print(json.dumps(blue_green_release(spec=spec, cluster_config=sys.argv[2]), default=str))
"""


def test_a_release_with_a_cluster_block_leaks_none_of_its_token(cluster, prefect_api, kube, namespace, kubectl,
                                                                  tmp_path):
    """Given a KubernetesClusterConfig block holding the ServiceAccount token kubeconfig (and no $KUBECONFIG),
    when `greenlight blue-green --cluster-block NAME` releases blue -> green and the flow called with
    `cluster_config=NAME` releases green -> blue, then both released, a missing block is refused (exit 2, nothing
    changed), and the token is nowhere in the output or in what Prefect recorded about the runs."""
    tutorial1(kubectl, kube, namespace)
    token_cfg, token = token_kubeconfig(cluster, kubectl, tmp_path)
    block = f"gl-{namespace}"[:60].rstrip("-")
    save_cluster_block(prefect_api, block, token_cfg)
    needles = needles_of_token(token)
    env = without_kubeconfig(cluster, prefect_api)

    def run(args: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(args, capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)

    outputs = []
    with EndpointSampler(kube, namespace, SVC) as sampler:
        r = run([sys.executable, "-m", "prefect_greenlight.cli", "blue-green", "--cluster-block", block, "-n",
                 namespace, "--service", SVC, "--manifest", str(TUTORIAL1 / "green-dep.yaml"), "--scale-down-delay",
                 "0", "--json"])
        assert r.returncode == 0, r.stderr[-3000:]
        outputs.append(r.stdout + r.stderr)
        assert selector(kube, namespace, SVC) == {"target": "green-dep"}, "released through the block"

        spec = {"namespace": namespace, "service": SVC, "image": "scubakiz/servicedemo:3.0", "cleanup": {"delay_s": 0}}
        r = run([sys.executable, "-c", FLOW_CALL, json.dumps(spec), block])
        assert r.returncode == 0, r.stderr[-3000:]
        outputs.append(r.stdout + r.stderr)
        assert json.loads(r.stdout.strip().splitlines()[-1])["outcome"] == "released"
        assert selector(kube, namespace, SVC) == {"target": "blue-dep"}, "the flow released through the block"

    missing = run([sys.executable, "-m", "prefect_greenlight.cli", "blue-green", "--cluster-block", "no-such-block",
                   "-n", namespace, "--service", SVC, "--image", "scubakiz/servicedemo:4.0"])
    assert missing.returncode == 2, missing.stderr[-3000:]
    assert "no Prefect block kubernetes-cluster-config/no-such-block" in missing.stderr, missing.stderr[-3000:]
    assert selector(kube, namespace, SVC) == {"target": "blue-dep"}, "a missing block changes nothing"
    assert sampler.zero_ready_instants() == 0, sampler.describe()

    for text in outputs + [missing.stdout + missing.stderr]:
        assert not leaks(text, needles), f"token in output: {leaks(text, needles)}"
    recorded = flow_runs_of(prefect_api, "blue-green-release", namespace)  # newest first
    assert [(r["parameters"].get("cluster_config"), (r.get("state") or {}).get("type")) for r in recorded] == [
        ("no-such-block", "FAILED"), (block, "COMPLETED"), (block, "COMPLETED")], "the parameter is the block's name"
    assert "no-such-block" in recorded[0]["state"]["message"], recorded[0]["state"]
    for run_ in recorded:
        rec = record_of(prefect_api, run_["id"])
        if run_["parameters"]["cluster_config"] == block:
            assert rec.log_count > 5 and rec.artifact_count >= 1, (rec.log_count, rec.artifact_count)
        for part in ("flow_run", "task_runs", "logs", "artifacts", "events"):
            found = leaks(getattr(rec, part), needles)
            assert not found, f"token in flow run {run_['name']} {part}: {found}"
    print(f"\n[secrets] cluster block {block}: {len(needles)} needles, 3 outputs, 3 flow runs searched")
