"""A blue-green re-run: same pod template (digest or field by field), finished or not, and what it does."""

from __future__ import annotations

import copy

import pytest

from prefect_greenlight.tasks.decisions.annotations import ReleaseRecord
from prefect_greenlight.tasks.decisions.history import HistoryEntry
from prefect_greenlight.tasks.decisions.repeat import (
    TEMPLATE_DIGEST,
    RepeatAction,
    as_green,
    decide_repeat,
    release_finished,
    same_pod_template,
    template_digest,
    with_digest,
)

WANTED = {"metadata": {"labels": {"target": "green-dep"}},
          "spec": {"containers": [{"name": "web", "image": "nginx:1.2", "ports": [{"containerPort": 80}],
                                   "resources": {"limits": {"cpu": 1}}}]}}
# what the apiserver hands back: defaults added, a quantity normalised to a string
DEFAULTED = {"metadata": {"labels": {"target": "green-dep"}, "creationTimestamp": None},
             "spec": {"containers": [{"name": "web", "image": "nginx:1.2", "imagePullPolicy": "IfNotPresent",
                                      "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                      "resources": {"limits": {"cpu": "1"}},
                                      "terminationMessagePath": "/dev/termination-log"}],
                      "dnsPolicy": "ClusterFirst", "restartPolicy": "Always"}}
RECORD = ReleaseRecord(live_deployment="green-dep", previous_deployment="blue-dep", release_id="r-1",
                       switched_at="2025-01-01T00:00:00Z", switch_kind="release")


def live(template: dict, digest_of: dict | None = None) -> dict:
    ann = {TEMPLATE_DIGEST: template_digest(digest_of)} if digest_of is not None else {}
    return {"metadata": {"name": "green-dep", "namespace": "ns", "labels": {"app": "x"}, "annotations": ann,
                         "uid": "u", "resourceVersion": "9"},
            "spec": {"replicas": 3, "template": template}}


def changed(path: list, value) -> dict:
    t = copy.deepcopy(WANTED)
    node = t
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return t


@pytest.mark.parametrize("desired,live_template,same", [
    (WANTED, DEFAULTED, True),
    (changed(["spec", "containers", 0, "image"], "nginx:1.3"), DEFAULTED, False),
    (changed(["spec", "containers", 0, "ports"], [{"containerPort": 81}]), DEFAULTED, False),
    (changed(["metadata", "labels"], {"target": "green-dep", "new": "1"}), DEFAULTED, False),
    (changed(["spec", "containers"], WANTED["spec"]["containers"] * 2), DEFAULTED, False),
    (changed(["spec", "volumes"], []), DEFAULTED, True),  # an empty field the apiserver drops
], ids=["defaults-and-normalised-quantity-are-the-same", "other-image-differs", "other-port-differs",
        "added-label-differs", "extra-container-differs", "empty-list-is-the-same"])
def test_same_pod_template_field_by_field_without_a_digest(desired, live_template, same):
    result = same_pod_template(desired, live(live_template))
    assert result.same is same and result.by == "fields"
    assert bool(result.differences) is not same


def test_the_recorded_digest_sees_a_removed_field_that_field_by_field_cannot():
    smaller = changed(["spec", "containers", 0, "resources"], {})
    assert same_pod_template(smaller, live(DEFAULTED)).same, "field by field: a removed field looks the same"
    result = same_pod_template(smaller, live(DEFAULTED, digest_of=WANTED))
    assert not result.same and result.by == "digest"
    assert "digest" in result.describe()


def test_the_recorded_digest_matches_the_same_manifest_and_image_mode_ignores_it():
    assert same_pod_template(WANTED, live(DEFAULTED, digest_of=WANTED)).same
    # image mode compares the live template (plus the image) with itself: a digest of the manifest must not count
    assert same_pod_template(DEFAULTED, live(DEFAULTED, digest_of=WANTED), use_digest=False).same


def test_a_difference_message_names_the_field_and_both_values():
    result = same_pod_template(changed(["spec", "containers", 0, "image"], "nginx:1.3"), live(DEFAULTED))
    assert result.describe() == "template.spec.containers[0].image: 'nginx:1.2' != wanted 'nginx:1.3'"


def test_with_digest_annotates_metadata_not_the_pod_template():
    manifest = {"metadata": {"name": "green-dep"}, "spec": {"template": WANTED}}
    out = with_digest(manifest)
    assert out["metadata"]["annotations"][TEMPLATE_DIGEST] == template_digest(WANTED)
    assert out["spec"]["template"] == WANTED and "annotations" not in manifest["metadata"]


def test_as_green_drops_server_metadata():
    g = as_green(live(DEFAULTED))
    assert g["metadata"] == {"name": "green-dep", "namespace": "ns", "labels": {"app": "x"}}
    assert g["spec"]["replicas"] == 3


def entry(strategy="blue-green", outcome="released", to="green-dep", frm="blue-dep", at="2025-01-01T00:01:00Z"):
    return HistoryEntry(release_id="x", strategy=strategy, outcome=outcome, from_deployment=frm, to_deployment=to,
                        finished_at=at)


@pytest.mark.parametrize("history,finished", [
    ([], False),
    ([entry()], True),
    ([entry(outcome="failed")], False),
    ([entry(), entry(strategy="rollback", outcome="rolled-back", to="blue-dep", frm="green-dep",
                     at="2025-01-01T00:02:00Z")], False),
    ([entry(to="other-dep")], False),
    ([entry(outcome="cleanup-failed")], False),
    ([entry(outcome="cleanup-failed"), entry(at="2025-01-01T00:02:00Z")], True),
], ids=["no-history", "released-to-the-recorded-live", "failed", "a-rollback-came-after", "released-elsewhere",
        "clean-up-failed: a re-run resumes", "clean-up-failed-then-finished-by-a-re-run"])
def test_release_finished(history, finished):
    assert release_finished(history, RECORD) is finished


def test_decide_repeat():
    same, other = same_pod_template(WANTED, live(DEFAULTED)), same_pod_template(
        changed(["spec", "containers", 0, "image"], "nginx:9"), live(DEFAULTED))
    assert decide_repeat(False, None, False, "svc", "green-dep", RECORD).action is RepeatAction.RELEASE
    assert decide_repeat(True, same, False, "svc", "green-dep", RECORD).action is RepeatAction.RESUME
    done = decide_repeat(True, same, True, "svc", "green-dep", RECORD)
    assert done.action is RepeatAction.ALREADY_LIVE
    assert done.message == ("already live: Deployment green-dep serves Service svc with the same pod template "
                            "(released by r-1 at 2025-01-01T00:00:00Z); nothing changed")
    refused = decide_repeat(True, other, True, "svc", "green-dep", RECORD)
    assert refused.action is RepeatAction.REFUSE and "nginx:9" in refused.message
