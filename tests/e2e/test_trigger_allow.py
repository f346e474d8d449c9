"""Who may release: the `greenlight.image.pushed` trigger releases only the namespace/Service pairs of its
deployment's allow-list (GREENLIGHT_TRIGGER_ALLOW at `prefect deploy`; the session deploys with
prefect_ops.TRIGGER_ALLOW). An event naming another Service is refused: its run fails before anything is read,
a `greenlight.release.refused` event about that Service says why, and the cluster is unchanged."""

from __future__ import annotations

import json
import subprocess

from prefect_greenlight.tasks.kube.client import read
from tests.e2e.prefect_ops import PREFECT, TRIGGER_ALLOW, prefect_env
from tests.e2e.release_helpers import ROOT, selector, tutorial1, wait_until

SERVICE = "production-svc"


def test_an_event_naming_a_service_outside_the_allow_list_is_refused_visibly(prefect_ops, prefect_api, kube,
                                                                            namespace, kubectl):
    tutorial1(kubectl, kube, namespace)
    assert not namespace.startswith("t-test-image-pushed-")  # outside the session's allow-list
    before = read(kube, "Service", namespace, SERVICE)["metadata"]["resourceVersion"]
    payload = {"image": "scubakiz/servicedemo:2.0", "service": SERVICE, "namespace": namespace}
    out = subprocess.run([*PREFECT, "event", "emit", "greenlight.image.pushed", "--resource-id",
                          "greenlight.image.scubakiz/servicedemo", "--payload", json.dumps(payload)],
                         capture_output=True, text=True, timeout=120, env=prefect_env(prefect_api), cwd=ROOT,
                         check=False)
    assert out.returncode == 0, out.stdout + out.stderr

    resource = f"greenlight.service.{namespace}.{SERVICE}"
    [refused] = wait_until("the refused event", lambda: prefect_ops.events("greenlight.release.refused", resource),
                           120, 1)
    reason = refused["payload"]["reason"]
    assert f"Service {namespace}/{SERVICE} is not in this deployment's allow-list" in reason, refused
    assert refused["payload"]["allowed"] == TRIGGER_ALLOW and refused["payload"]["image"] == payload["image"]
    run_ids = [r["prefect.resource.id"].removeprefix("prefect.flow-run.") for r in refused.get("related", [])
               if r["prefect.resource.id"].startswith("prefect.flow-run.")]
    assert run_ids, refused
    assert prefect_ops.wait_state(run_ids[0], {"FAILED"}, 60) == "FAILED"
    # logs reach the API in batches (every 2 s): the final state may come first
    wait_until("the refusal in the run's logs", lambda: "refused: Service" in prefect_ops.logs(run_ids[0]), 20, 0.5)
    # nothing released, nothing even started: no other release event, the cluster as it was
    assert [e["event"] for e in prefect_ops.events("greenlight.release.", resource)] == ["greenlight.release.refused"]
    assert selector(kube, namespace, SERVICE) == {"target": "blue-dep"}
    assert read(kube, "Deployment", namespace, "green-dep") is None
    assert read(kube, "Lease", namespace, f"greenlight-{SERVICE}") is None
    assert read(kube, "Service", namespace, SERVICE)["metadata"]["resourceVersion"] == before
    assert [d.metadata.name for d in kube.apps.list_namespaced_deployment(namespace).items] == ["blue-dep"]
