"""deployments/: the worker's Deployment runs `greenlight worker` with the health endpoint its probes ask for, as
the ServiceAccount of the RBAC files, with the Prefect auth string from a Secret; the ClusterRole variant grants
exactly the Role's rules; the Dockerfile installs the wheel and runs the same command. (The cluster's own
validation is tests/e2e/test_worker_in_cluster.py.)"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from prefect_greenlight.cli import worker as worker_cli

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENTS = ROOT / "deployments"


def _docs(name: str) -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all((DEPLOYMENTS / name).read_text()) if d}


def _container() -> dict:
    return _docs("worker.yaml")["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def test_the_cluster_role_grants_exactly_the_namespaced_roles_rules():
    assert _docs("rbac-cluster.yaml")["ClusterRole"]["rules"] == _docs("rbac.yaml")["Role"]["rules"]


def test_the_cluster_binding_names_the_service_account_it_creates():
    docs = _docs("rbac-cluster.yaml")
    account = docs["ServiceAccount"]["metadata"]
    subject = docs["ClusterRoleBinding"]["subjects"][0]
    assert (subject["kind"], subject["name"], subject["namespace"]) == ("ServiceAccount", account["name"],
                                                                        account["namespace"])
    assert docs["ClusterRoleBinding"]["roleRef"]["name"] == docs["ClusterRole"]["metadata"]["name"]


def test_the_worker_runs_as_the_rbac_service_account_with_the_auth_string_from_a_secret():
    pod = _docs("worker.yaml")["Deployment"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == _docs("rbac.yaml")["ServiceAccount"]["metadata"]["name"]
    env = {e["name"]: e for e in _container()["env"]}
    assert env["PREFECT_API_URL"]["value"].startswith("http")
    assert env["PREFECT_API_AUTH_STRING"]["valueFrom"]["secretKeyRef"]["key"] == "auth-string"
    assert "KUBECONFIG" not in env, "in the cluster the ServiceAccount's token is the credential"


def test_the_probes_ask_the_health_endpoint_the_command_serves():
    container = _container()
    args = container["args"]
    parser = argparse.ArgumentParser()
    worker_cli.add_parser(parser.add_subparsers())
    parsed = parser.parse_args(args)  # the CLI's own parser accepts the manifest's arguments
    assert args[0] == "worker" and parsed.with_healthcheck and parsed.pool == "greenlight"
    port = int({e["name"]: e for e in container["env"]}["PREFECT_WORKER_WEBSERVER_PORT"]["value"])
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/health" and named[get["port"]] == port, probe


def test_the_dockerfile_installs_the_wheel_and_runs_the_manifests_command():
    lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0].startswith("FROM python:3.11")
    assert any("pip install" in line and ".whl" in line for line in lines)
    assert 'ENTRYPOINT ["greenlight"]' in lines
    cmd = next(line for line in lines if line.startswith("CMD "))
    assert yaml.safe_load(cmd.removeprefix("CMD ")) == _container()["args"]
