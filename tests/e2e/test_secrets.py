"""Credentials never leak: releases (a success each way, and a failure with its rollback) run with a
ServiceAccount token kubeconfig and with a kubeconfig embedding a client certificate and key; neither the token
(nor any of its three parts) nor any certificate or key material (the base64 of the kubeconfig fields, or any line
of the PEM bodies) may appear in the CLI's stdout/stderr, in the Prefect flow run (its parameters, state
messages), its task runs, its logs, its artifacts or its events. The same for releases whose credentials come
from a Prefect KubernetesClusterConfig block holding the token kubeconfig (CLI `--cluster-block`, and the flow
called with `cluster_config`); a missing block is refused (exit 2; its flow run Failed, nothing changed). And for
webhook headers taken from Prefect Secret blocks: a webhook hook's `Authorization` (`--hook-header-secret`) and the
`greenlight webhook --header-secret` notification reach the receiver with the value, which is nowhere else."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.e2e.hook_receiver import Receiver
from tests.e2e.prefect_dump import events_about, flow_runs_of, record_of
from tests.e2e.prefect_ops import api_call
from tests.e2e.release_helpers import ROOT, TUTORIAL1, cli_env, greenlight, selector, tutorial1, wait_until
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


SAVE_SECRET = """import os, sys
from prefect.blocks.system import Secret
Secret(value=os.environ["SECRET_VALUE"]).save(sys.argv[1], overwrite=True)
"""


def save_secret(prefect_api: str, name: str, value: str) -> None:
    """A Prefect Secret block on the session's server, as a user saves one (the value through the environment)."""
    r = subprocess.run([sys.executable, "-c", SAVE_SECRET, name], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PREFECT_API_URL": prefect_api, "SECRET_VALUE": value})
    assert r.returncode == 0, r.stderr[-3000:]


def block_document(prefect_api: str, block_id: str, include_secrets: bool) -> dict:
    resp = api_call("GET", f"{prefect_api}/block_documents/{block_id}?include_secrets={str(include_secrets).lower()}")
    resp.raise_for_status()
    return resp.json()


def exists(prefect_api: str, block_type: str, name: str) -> bool:
    url = f"{prefect_api}/block_types/slug/{block_type}/block_documents/name/{name}"
    return api_call("GET", url).status_code == 200


def automation_names(prefect_api: str) -> list[str]:
    resp = api_call("POST", f"{prefect_api}/automations/filter", json={})
    resp.raise_for_status()
    return [a["name"] for a in resp.json()]


@pytest.mark.both_ends  # Prefect's Secret and Webhook blocks and its CallWebhook action, on both Prefect ends
def test_webhook_headers_from_secret_blocks_reach_only_the_receiver(cluster, prefect_api, kube, namespace, kubectl):
    """Given two Secret blocks (a gate's and a chat's token) and a `greenlight webhook --on completed
    --header-secret Authorization=CHAT` notification, when a release runs with `--hook-webhook pre-switch=GATE
    --hook-header-secret Authorization=GATE_BLOCK`, then the gate gets its Authorization and the notification its
    own; the Webhook block holds the value as a secret (obfuscated unless include_secrets); a missing block is
    refused both for the notification (exit 2, nothing created) and the release (exit 2, nothing changed); and
    neither value is in any CLI output, flow run (parameters hold the block name), task run, log, artifact, event
    (the runs' and the automation's) or on the Service (its history and hook record)."""
    tutorial1(kubectl, kube, namespace)
    gate_value, chat_value = f"Bearer gl-gate-{uuid.uuid4().hex}", f"Bearer gl-chat-{uuid.uuid4().hex}"
    needles = [gate_value, gate_value.split()[1], chat_value, chat_value.split()[1]]
    gate_block, chat_block = f"gate-{namespace}"[:60].rstrip("-"), f"chat-{namespace}"[:60].rstrip("-")
    save_secret(prefect_api, gate_block, gate_value)
    save_secret(prefect_api, chat_block, chat_value)
    name = f"gl-notify-{namespace}"[:60].rstrip("-")
    outputs = []
    with Receiver() as receiver:
        missing = greenlight(cluster, prefect_api, "webhook", "--url", receiver.url("/notify"), "--name", name + "-x",
                             "--header-secret", "Authorization=no-such-secret")
        assert missing.returncode == 2 and missing.stdout == "", missing.stderr[-3000:]
        assert missing.stderr == ("error: --header-secret header Authorization: no Prefect block secret/no-such-secret "
                                  "(create one with Secret(value=...).save('no-such-secret') or in the UI, Blocks; "
                                  "list them with `prefect block ls`)\n"), missing.stderr
        assert not exists(prefect_api, "webhook", name + "-x") and name + "-x" not in automation_names(prefect_api)
        r = greenlight(cluster, prefect_api, "webhook", "--url", receiver.url("/notify"), "--name", name, "--on",
                       "completed", "--header-secret", f"Authorization={chat_block}", "--json")
        assert r.returncode == 0, r.stderr[-3000:]
        installed = json.loads(r.stdout)
        assert installed["header_secrets"] == {"Authorization": chat_block}
        outputs += [missing.stdout + missing.stderr, r.stdout + r.stderr]
        try:
            _release_with_a_secret_header(cluster, prefect_api, kube, namespace, receiver, gate_block, outputs)
            gate_call = receiver.on("/gate")[0]
            assert gate_call.headers.get("Authorization") == gate_value, "the hook's header, from its Secret"
            mine = lambda: [c for c in receiver.on("/notify") if c.body.get("namespace") == namespace]  # noqa: E731
            [notified] = wait_until("the notification", mine, 60, 0.5)
            assert notified.body["event"] == "greenlight.release.completed"
            assert notified.headers.get("Authorization") == chat_value, "the notification's header, from its Secret"
            automation_events = wait_until("the automation's executed action", lambda: _executed(
                prefect_api, installed["automation_id"]), 60, 0.5)
        finally:
            api_call("DELETE", f"{prefect_api}/automations/{installed['automation_id']}")

    hidden = block_document(prefect_api, installed["block_document_id"], include_secrets=False)
    shown = block_document(prefect_api, installed["block_document_id"], include_secrets=True)
    assert set(hidden["data"]["headers"]) == {"Content-Type", "Authorization"}, hidden["data"]
    assert not leaks(json.dumps(hidden), needles) and shown["data"]["headers"]["Authorization"] == chat_value
    _assert_nowhere(prefect_api, kube, namespace, needles, outputs + [automation_events], gate_block)


def _executed(prefect_api: str, automation_id: str) -> str | None:
    """The automation's events as JSON text, once they include the executed webhook call (None before)."""
    text = json.dumps(events_about(prefect_api, f"prefect.automation.{automation_id}"))
    return text if "prefect.automation.action.executed" in text else None


def _release_with_a_secret_header(cluster, prefect_api, kube, namespace, receiver, gate_block, outputs) -> None:
    """blue -> green with the gate's Authorization from its block; then the same with a missing block: refused."""
    args = ["blue-green", "-n", namespace, "--service", SVC, "--scale-down-delay", "0", "--json",
            "--hook-webhook", f"pre-switch={receiver.url('/gate')}"]
    with EndpointSampler(kube, namespace, SVC) as sampler:
        r = greenlight(cluster, prefect_api, *args, "--manifest", str(TUTORIAL1 / "green-dep.yaml"),
                       "--hook-header-secret", f"Authorization={gate_block}")
        assert r.returncode == 0, r.stderr[-3000:]
        assert selector(kube, namespace, SVC) == {"target": "green-dep"}
        missing = greenlight(cluster, prefect_api, *args, "--image", "scubakiz/servicedemo:3.0",
                             "--hook-header-secret", "Authorization=no-such-secret")
        assert missing.returncode == 2, missing.stderr[-3000:]
        assert "header Authorization: no Prefect block secret/no-such-secret" in missing.stderr, missing.stderr
        assert selector(kube, namespace, SVC) == {"target": "green-dep"}, "a missing Secret changes nothing"
    assert sampler.zero_ready_instants() == 0, sampler.describe()
    assert len(receiver.on("/gate")) == 1, "the refused release called no hook"
    outputs += [r.stdout + r.stderr, missing.stdout + missing.stderr]


def _assert_nowhere(prefect_api, kube, namespace, needles, outputs, gate_block) -> None:
    for text in outputs:
        assert not leaks(text, needles), f"secret header value in output: {leaks(text, needles)}"
    recorded = flow_runs_of(prefect_api, "blue-green-release", namespace)  # newest first
    assert [(r["state"] or {}).get("type") for r in recorded] == ["FAILED", "COMPLETED"], recorded
    for run in recorded:
        [hook] = run["parameters"]["spec"]["hooks"]
        assert hook["webhook"]["secret_headers"]["Authorization"] in (gate_block, "no-such-secret"), hook
        rec = record_of(prefect_api, run["id"])
        for part in ("flow_run", "task_runs", "logs", "artifacts", "events"):
            found = leaks(getattr(rec, part), needles)
            assert not found, f"secret header value in flow run {run['name']} {part}: {found}"
    completed = record_of(prefect_api, recorded[1]["id"])
    assert "hook-pre-switch-webhook" in completed.artifacts and "HTTP 200" in completed.logs, "the hook ran, reported"
    assert "no-such-secret" in recorded[0]["state"]["message"], recorded[0]["state"]
    service = json.dumps(kube.core.read_namespaced_service(SVC, namespace).to_dict(), default=str)
    assert "pre-switch-webhook" in service and not leaks(service, needles), "the Service's hook record and history"
    print(f"\n[secrets] webhook headers: {len(needles)} needles, {len(outputs)} outputs, {len(recorded)} flow runs "
          "and the automation's events searched")
