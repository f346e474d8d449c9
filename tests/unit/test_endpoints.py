"""endpoint_targets (union across slices and IP families), deployment_of_pods (ownership, not labels), tally, only."""

from __future__ import annotations

import pytest

from prefect_greenlight.tasks.decisions.endpoints import (
    OTHER,
    EndpointCounts,
    deployment_of_pods,
    endpoint_targets,
    only,
    tally,
)
from tests.unit.builders import deployment, endpoint, endpoint_slice, pod, replicaset

SEL = {"app": "my-app"}
BLUE = deployment("my-app-blue", {**SEL, "version": "blue"})
GREEN = deployment("my-app-green", {**SEL, "version": "green"})
BLUE_RS, GREEN_RS = replicaset(BLUE, suffix="b1"), replicaset(GREEN, suffix="g1")
B1, B2 = (pod(f"my-app-blue-b1-{i}", BLUE_RS, labels=BLUE_RS["metadata"]["labels"]) for i in "xy")
G1, G2, G3 = (pod(f"my-app-green-g1-{i}", GREEN_RS, labels=GREEN_RS["metadata"]["labels"]) for i in "abc")
OWNERS = deployment_of_pods([B1, B2, G1, G2, G3], [BLUE_RS, GREEN_RS], [BLUE, GREEN])


def uid(p):
    return p["metadata"]["uid"]


# --------------------------------------------------------------------------- endpoint_targets

def test_union_across_several_slices():
    slices = [endpoint_slice("web", [endpoint(G1, "10.0.0.1"), endpoint(G2, "10.0.0.2")], suffix="a"),
              endpoint_slice("web", [endpoint(G3, "10.0.0.3")], suffix="b")]
    assert endpoint_targets(slices) == {uid(G1): True, uid(G2): True, uid(G3): True}


def test_dual_stack_duplicates_count_once():
    v4 = endpoint_slice("web", [endpoint(G1, "10.0.0.1"), endpoint(G2, "10.0.0.2")], suffix="v4")
    v6 = endpoint_slice("web", [endpoint(G1, "fd00::1"), endpoint(G2, "fd00::2")], family="IPv6", suffix="v6")
    targets = endpoint_targets([v4, v6])
    assert targets == {uid(G1): True, uid(G2): True}
    assert tally([v4, v6], OWNERS).ready == {"my-app-green": 2}


def test_pod_ready_in_any_slice_counts_ready():
    a = endpoint_slice("web", [endpoint(G1, "10.0.0.1", ready=False)], suffix="a")
    b = endpoint_slice("web", [endpoint(G1, "fd00::1", ready=True)], family="IPv6", suffix="b")
    assert endpoint_targets([a, b]) == {uid(G1): True}
    assert endpoint_targets([b, a]) == {uid(G1): True}


@pytest.mark.parametrize("kw, ready", [
    (dict(ready=True), True),
    (dict(ready=None), True),  # missing condition: unknown, which consumers treat as ready
    (dict(ready=False), False),
    (dict(ready=False, serving=True, terminating=True), False),
    (dict(ready=True, terminating=True), False),  # publishNotReadyAddresses style: terminating is never ready
    (dict(ready=None, terminating=True), False),
    (dict(ready=True, terminating=False), True),
])
def test_ready_conditions(kw, ready):
    assert endpoint_targets([endpoint_slice("web", [endpoint(G1, "10.0.0.1", **kw)])]) == {uid(G1): ready}


def test_no_conditions_key_at_all_counts_ready():
    ep = endpoint(G1, "10.0.0.1")
    del ep["conditions"]
    assert endpoint_targets([endpoint_slice("web", [ep])]) == {uid(G1): True}


def test_empty_and_null_endpoint_lists():
    s = endpoint_slice("web", [])
    s["endpoints"] = None
    assert endpoint_targets([]) == {} and endpoint_targets([s, endpoint_slice("web", [])]) == {}


def test_endpoint_without_target_ref_is_kept_by_address():
    slices = [endpoint_slice("web", [endpoint(None, "192.168.1.9"), endpoint(G1, "10.0.0.1")])]
    targets = endpoint_targets(slices)
    assert len(targets) == 2 and targets[uid(G1)] is True
    counts = tally(slices, OWNERS)
    assert counts.ready == {"my-app-green": 1, OTHER: 1}


# --------------------------------------------------------------------------- deployment_of_pods

def test_ownership_maps_pods_to_deployments():
    assert OWNERS == {uid(B1): "my-app-blue", uid(B2): "my-app-blue", uid(G1): "my-app-green",
                      uid(G2): "my-app-green", uid(G3): "my-app-green"}


def test_ownership_not_labels():
    """A pod carrying blue's labels but owned by green's ReplicaSet is green's (canaries share labels)."""
    impostor = pod("looks-blue", GREEN_RS, labels=BLUE_RS["metadata"]["labels"])
    unowned = pod("bare", None, labels=BLUE_RS["metadata"]["labels"])
    owners = deployment_of_pods([impostor, unowned], [BLUE_RS, GREEN_RS], [BLUE, GREEN])
    assert owners == {uid(impostor): "my-app-green"}


def test_old_replicasets_of_a_deployment_map_to_it():
    old_rs = replicaset(GREEN, revision="0", suffix="old")
    p = pod("my-app-green-old-z", old_rs)
    assert deployment_of_pods([p], [old_rs, GREEN_RS], [GREEN]) == {uid(p): "my-app-green"}


def test_unknown_owners_are_left_out():
    foreign = deployment("foreign", {"app": "x"})
    foreign_rs = replicaset(foreign, suffix="f1")
    p_foreign = pod("foreign-f1-a", foreign_rs)
    p_missing_rs = pod("ghost", replicaset(GREEN, suffix="gone"))
    p_job = pod("job-pod", None)
    p_job["metadata"]["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": "j",
                                             "uid": GREEN_RS["metadata"]["uid"], "controller": True}]
    owners = deployment_of_pods([p_foreign, p_missing_rs, p_job], [foreign_rs, GREEN_RS], [BLUE, GREEN])
    assert owners == {}  # the Job ref shares a ReplicaSet's uid but is not kind ReplicaSet


def test_replicaset_owned_by_non_deployment_is_ignored():
    rs = replicaset(GREEN, suffix="odd")
    rs["metadata"]["ownerReferences"][0]["kind"] = "Rollout"
    p = pod("odd-pod", rs)
    assert deployment_of_pods([p], [rs], [GREEN]) == {}


# --------------------------------------------------------------------------- tally / only

def test_tally_counts_ready_and_not_ready_per_deployment():
    slices = [endpoint_slice("web", [endpoint(G1, "10.0.0.1"), endpoint(G2, "10.0.0.2", ready=False),
                                     endpoint(B1, "10.0.1.1", ready=False, terminating=True),
                                     endpoint(B2, "10.0.1.2")])]
    counts = tally(slices, OWNERS)
    assert counts.ready == {"my-app-green": 1, "my-app-blue": 1}
    assert counts.not_ready == {"my-app-green": 1, "my-app-blue": 1}
    assert counts.total_ready == 2
    assert counts.describe() == "my-app-blue: 1 ready/1 not ready, my-app-green: 1 ready/1 not ready"


def test_describe_no_endpoints():
    assert tally([], OWNERS).describe() == "no endpoints"


@pytest.mark.parametrize("ready, not_ready, desired, ok, needle", [
    ({"my-app-green": 3}, {}, 3, True, "Service targets only my-app-green: 3 ready endpoints"),
    ({"my-app-green": 4}, {}, 3, True, "4 ready endpoints"),
    # blue pods still terminating (not ready) do not receive new connections: fine
    ({"my-app-green": 3}, {"my-app-blue": 2}, 3, True, "targets only"),
    ({"my-app-green": 3, "my-app-blue": 1}, {}, 3, False, "outside my-app-green: 1 of my-app-blue"),
    ({"my-app-green": 3, OTHER: 2}, {}, 3, False, f"2 of {OTHER}"),
    ({"my-app-green": 3, "my-app-blue": 1, "z": 2}, {}, 3, False, "1 of my-app-blue, 2 of z"),
    ({"my-app-green": 2}, {"my-app-green": 1}, 3, False, "2 of 3 ready endpoints are my-app-green pods"),
    ({}, {}, 1, False, "0 of 1 ready endpoints"),
    # strays are reported before a shortfall
    ({"my-app-green": 1, "my-app-blue": 3}, {}, 3, False, "still has ready endpoints outside"),
])
def test_only(ready, not_ready, desired, ok, needle):
    counts = EndpointCounts(ready, not_ready)
    verdict = only(counts, "my-app-green", desired)
    assert verdict.ok is ok and needle in verdict.message and verdict.counts is counts


def test_end_to_end_switch_observation():
    before = [endpoint_slice("web", [endpoint(B1, "10.0.1.1"), endpoint(B2, "10.0.1.2")])]
    during = [endpoint_slice("web", [endpoint(B1, "10.0.1.1", ready=False, terminating=True),
                                     endpoint(G1, "10.0.0.1"), endpoint(G2, "10.0.0.2")], suffix="a"),
              endpoint_slice("web", [endpoint(B2, "10.0.1.2")], suffix="b")]
    after = [endpoint_slice("web", [endpoint(G1, "10.0.0.1"), endpoint(G2, "10.0.0.2"), endpoint(G3, "10.0.0.3")])]
    assert [only(tally(s, OWNERS), "my-app-green", 3).ok for s in (before, during, after)] == [False, False, True]


def test_deployment_by_rs_name_strips_the_pod_template_hash():
    from prefect_greenlight.tasks.decisions.endpoints import deployment_by_rs_name

    def pod(uid, rs, hash_):
        return {"metadata": {"uid": uid, "labels": {"pod-template-hash": hash_} if hash_ else {},
                             "ownerReferences": [{"kind": "ReplicaSet", "name": rs}]}}

    pods = [pod("a", "green-dep-758bbff5cb", "758bbff5cb"), pod("b", "my-app-v2-6d9f", "6d9f"),
            pod("c", "bare-rs", ""), pod("d", "other-rs-123", "999")]
    assert deployment_by_rs_name(pods) == {"a": "green-dep", "b": "my-app-v2"}


def test_covering_selector_spans_both_colors_and_nothing_narrower():
    from prefect_greenlight.tasks.decisions.endpoints import covering_selector
    from prefect_greenlight.tasks.decisions.workload import selector_query

    both = covering_selector({"app": "web", "color": "blue"}, {"app": "web", "color": "green"})
    assert selector_query(both) == "app=web,color in (blue,green)"
    tutorial = covering_selector({"target": "blue-dep"}, {"target": "green-dep"})
    assert selector_query(tutorial) == "target in (blue-dep,green-dep)"
    # a key only one of them has is left out: the scope must cover the other's pods too
    assert selector_query(covering_selector({"app": "web", "track": "a"}, {"app": "web"})) == "app=web"
