"""Issue #5: a human answers a paused blue-green release in the REAL Prefect UI (headless Chromium).

The release is started through the `blue-green` deployment (as the UI's Run button does) and run by the process
worker; it pauses at the approval step with a form. The browser opens the paused run, clicks Resume, reads the
release summary in the form, fills it in and submits. Then the cluster shows the outcome: approved -> the
Service on green-dep, its EndpointSlices only green's pods, the run Completed; rejected -> the run Failed (a
rejection rolls back), the Service still on blue-dep, green and the preview Service removed. The approver's
answer is in the run's logs. The filled form is saved as artifacts/ui-approval-form.png (and ...-reject.png).
"""

from __future__ import annotations

import json

import pytest
import yaml

from prefect_greenlight.tasks.kube.client import read
from prefect_greenlight.tasks.kube.observe import ready_pods_of
from prefect_greenlight.tasks.kube.waiting import wait_endpoints
from tests.e2e.prefect_ops import FINAL, api_call
from tests.e2e.release_helpers import TUTORIAL1, ready, selector, tutorial1
from tests.e2e.sampler import EndpointSampler
from tests.e2e.ui import ResumeForm, browser_session, expect, wait_badge

APPROVER = "ui-tester"


def _spec(namespace: str) -> dict:
    return {"namespace": namespace, "service": "production-svc",
            "manifest": yaml.safe_load((TUTORIAL1 / "green-dep.yaml").read_text()),
            "preview_service": "staging-svc", "approval": {"mode": "manual", "timeout_s": 300},
            "cleanup": {"delay_s": 0}}


def _cancel_if_unfinished(prefect_api: str, run_id: str) -> None:
    """A test that fails before answering leaves a paused run (and its worker process) behind: cancel it."""
    run = api_call("GET", f"{prefect_api}/flow_runs/{run_id}").json()
    if (run.get("state") or {}).get("type") not in FINAL:
        api_call("POST", f"{prefect_api}/flow_runs/{run_id}/set_state",
                 json={"state": {"type": "CANCELLING", "name": "Cancelling"}, "force": True})


@pytest.mark.both_ends
@pytest.mark.parametrize("approve", [True, False], ids=["approve", "reject"])
def test_paused_release_answered_in_the_prefect_ui(prefect_ops, prefect_api, kube, namespace, kubectl, request,
                                                   approve):
    tutorial1(kubectl, kube, namespace)
    reason = "preview looks right" if approve else "preview shows the wrong page"
    shot = "ui-approval-form" if approve else "ui-approval-form-reject"
    with EndpointSampler(kube, namespace, "production-svc") as sampler, \
            browser_session(prefect_api, f"ui-{'approve' if approve else 'reject'}") as ui:
        run_id = prefect_ops.run("blue-green", {"spec": _spec(namespace)})
        request.addfinalizer(lambda: _cancel_if_unfinished(prefect_api, run_id))
        prefect_ops.wait_state(run_id, {"PAUSED"}, timeout=180)
        assert selector(kube, namespace, "production-svc") == {"target": "blue-dep"}, "no switch before approval"

        form = ResumeForm.open(ui, run_id)
        # the form's description is the release summary: its heading names green and the Service; it names the
        # namespace and blue, and its smoke-check table lists every green pod of the real cluster
        heading = form.description().get_by_role("heading").first
        for text in ("green-dep", "production-svc"):
            expect(heading).to_contain_text(text)
        for text in (namespace, "blue-dep", *(p["metadata"]["name"] for p in ready_pods_of(kube, namespace,
                                                                                            "green-dep"))):
            expect(form.description()).to_contain_text(text)
        form.set_switch("Approve", approve)
        form.fill("Reason", reason)
        form.fill("Approver", APPROVER)
        ui.save(shot)
        if approve:  # the documentation's pictures (docs/img/): the form, the run, its report and smoke table
            ui.picture("ui-approval-form")
        posted = form.submit()
        assert posted == {"approve": approve, "reason": reason, "approver": APPROVER}

        final = prefect_ops.wait_state(run_id, {"COMPLETED" if approve else "FAILED"}, timeout=180)
        wait_badge(ui, final.capitalize())
        if approve:
            ui.picture("run-timeline")
            for key, name in (("blue-green-", "release-report"), ("smoke-", "smoke-artifact")):
                if ui.open_artifact(prefect_api, run_id, key):
                    ui.picture(name)
        assert not ui.blocked, f"the UI tried to leave localhost: {ui.blocked}"

    verdict = "approved" if approve else "rejected"
    prefect_ops.logs_with(run_id, f"promotion {verdict} by {APPROVER} (human): {reason}")
    assert sampler.zero_ready_instants() == 0, sampler.describe()
    if approve:
        assert selector(kube, namespace, "production-svc") == {"target": "green-dep"}
        assert "only green-dep: 3 ready" in wait_endpoints(kube, namespace, "production-svc", "green-dep", 3,
                                                           10).message
        note = json.loads(read(kube, "Service", namespace, "production-svc")["metadata"]["annotations"][
            "greenlight.io/approval"])
        assert note["by"] == APPROVER and reason in note["reason"]
    else:
        assert selector(kube, namespace, "production-svc") == {"target": "blue-dep"}
        assert ready(kube, namespace, "blue-dep") == 3
        assert read(kube, "Deployment", namespace, "green-dep") is None, "green is removed"
        assert read(kube, "Service", namespace, "staging-svc") is None, "the preview Service it created is removed"
        assert sampler.instants_serving({"green-dep"}) == 0, sampler.describe()
