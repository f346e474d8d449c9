"""Who may release: the `greenlight.image.pushed` trigger releases only the namespace/Service patterns of its
allow-list, the Prefect Variable `greenlight_allowed_services` read when the triggered run starts. The session
deploys prefect.yaml with nothing set (prefect_ops.deploy_all): an event naming a Service is refused, its run fails
before anything is read, and a `greenlight.release.refused` event says why and how to allow it. Doing what it says
(`prefect variable set ...`), with no redeploy, lets the next event release."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from prefect_greenlight.tasks.kube.client import read
from tests.e2e.prefect_ops import ALLOW_VARIABLE, PREFECT, allow_variable, prefect_env, set_allow_variable
from tests.e2e.release_helpers import ROOT, ready, selector, tutorial1, wait_until

SERVICE = "production-svc"
IMAGE = "scubakiz/servicedemo:2.0"


def _emit_image_pushed(api: str, namespace: str) -> None:
    payload = {"image": IMAGE, "service": SERVICE, "namespace": namespace}
    out = subprocess.run([*PREFECT, "event", "emit", "greenlight.image.pushed", "--resource-id",
                          "greenlight.image.scubakiz/servicedemo", "--payload", json.dumps(payload)],
                         capture_output=True, text=True, timeout=120, env=prefect_env(api), cwd=ROOT, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def _run_of(event: dict) -> str:
    run_ids = [r["prefect.resource.id"].removeprefix("prefect.flow-run.") for r in event.get("related", [])
               if r["prefect.resource.id"].startswith("prefect.flow-run.")]
    assert run_ids, event
    return run_ids[0]


def _runs_for(prefect_ops, namespace: str) -> list[str]:
    """The blue-green flow runs the trigger started for this test's namespace."""
    return [fr["id"] for fr in prefect_ops.flow_runs("blue-green")
            if ((fr.get("parameters") or {}).get("spec") or {}).get("namespace") == namespace]


def _refused_visibly(prefect_ops, kube, namespace: str, resource: str) -> dict:
    """The refused event, once its run has failed; nothing released, nothing even started, the cluster as it was."""
    before = read(kube, "Service", namespace, SERVICE)["metadata"]["resourceVersion"]
    _emit_image_pushed(prefect_ops.api, namespace)
    [refused] = wait_until("the refused event", lambda: prefect_ops.events("greenlight.release.refused", resource),
                           120, 1)
    run = _run_of(refused)
    assert prefect_ops.wait_state(run, {"FAILED"}, 60) == "FAILED"
    prefect_ops.logs_with(run, "refused: Service")
    assert [e["event"] for e in prefect_ops.events("greenlight.release.", resource)] == ["greenlight.release.refused"]
    assert selector(kube, namespace, SERVICE) == {"target": "blue-dep"}
    assert read(kube, "Deployment", namespace, "green-dep") is None
    assert read(kube, "Lease", namespace, f"greenlight-{SERVICE}") is None
    assert read(kube, "Service", namespace, SERVICE)["metadata"]["resourceVersion"] == before
    assert [d.metadata.name for d in kube.apps.list_namespaced_deployment(namespace).items] == ["blue-dep"]
    return refused


@pytest.mark.both_ends
def test_an_unset_allow_list_refuses_and_says_how_then_the_variable_set_without_redeploy_releases(
        prefect_ops, prefect_api, kube, namespace, kubectl):
    tutorial1(kubectl, kube, namespace)
    assert allow_variable(prefect_api) is None, "the session deploys with no allow-list set"
    target, resource = f"{namespace}/{SERVICE}", f"greenlight.service.{namespace}.{SERVICE}"
    deployed = prefect_ops.deployments["blue-green"]["updated"]

    # Given nothing allowed, When CI emits the event, Then the release is refused, saying how to allow it
    refused_event = _refused_visibly(prefect_ops, kube, namespace, resource)
    refused = refused_event["payload"]
    assert refused["source"] == "variable" and refused["variable"] == ALLOW_VARIABLE, refused
    assert refused["allowed"] == "" and refused["image"] == IMAGE, refused
    assert refused["reason"] == (f"Service {target} is not in the allow-list of the Prefect Variable {ALLOW_VARIABLE}"
                                 " (nothing: it is unset or empty); nothing was changed"), refused
    assert f"set the Prefect Variable {ALLOW_VARIABLE} to include '{target}'" in refused["how"], refused
    assert refused["how"].endswith(f"CLI: {refused['command']}"), refused

    # When someone does what the refusal says (the CLI command it names), with no redeploy
    argv = shlex.split(refused["command"])
    assert argv[:4] == ["prefect", "variable", "set", ALLOW_VARIABLE], argv
    try:
        out = subprocess.run([*PREFECT, *argv[1:]], capture_output=True, text=True, timeout=120,
                             env=prefect_env(prefect_api), cwd=ROOT, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        assert allow_variable(prefect_api) == target
        # Then the next event releases: the Service moves to green
        _emit_image_pushed(prefect_api, namespace)
        [run] = wait_until("the second triggered run", lambda: [r for r in _runs_for(prefect_ops, namespace)
                                                                 if r != _run_of(refused_event)], 90, 1)
        prefect_ops.wait_state(run, {"COMPLETED"}, 240)
    finally:
        set_allow_variable(prefect_api, None)  # as the session had it: other tests allow their own namespaces
    green = read(kube, "Deployment", namespace, "green-dep")
    assert green["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    assert selector(kube, namespace, SERVICE) == {"target": "green-dep"} and ready(kube, namespace, "green-dep") == 3
    assert [e["event"] for e in prefect_ops.events("greenlight.release.refused", resource)] == [
        "greenlight.release.refused"], "the second event was not refused"
    prefect_ops.refresh()
    assert prefect_ops.deployments["blue-green"]["updated"] == deployed, "no redeploy"
