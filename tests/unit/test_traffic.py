"""selector_patch: a guarded RFC 6902 patch; proven by applying it with the `jsonpatch` library."""

from __future__ import annotations

import copy

import jsonpatch
import pytest

from prefect_greenlight.tasks.decisions.traffic import selector_patch
from tests.unit.builders import service

BLUE = {"app": "my-app", "version": "blue"}
GREEN = {"app": "my-app", "version": "green"}
ANN = {"greenlight.io/live-deployment": "my-app-green", "greenlight.io/release-id": "r1"}


def apply(svc: dict, ops: list[dict]) -> dict:
    return jsonpatch.apply_patch(svc, ops, in_place=False)


def test_ops_for_a_color_switch():
    ops = selector_patch(service("web", BLUE), BLUE, GREEN, {})
    assert ops == [
        {"op": "test", "path": "/spec/selector/app", "value": "my-app"},
        {"op": "test", "path": "/spec/selector/version", "value": "blue"},
        {"op": "replace", "path": "/spec/selector/version", "value": "green"},
    ]


def test_tests_come_before_every_write():
    ops = selector_patch(service("web", {"a": "1", "b": "2"}), {"a": "1", "b": "2"}, {"a": "9", "c": "3"}, ANN)
    kinds = [o["op"] for o in ops]
    assert kinds[:2] == ["test", "test"] and "test" not in kinds[2:]
    assert {(o["op"], o["path"]) for o in ops[2:4]} == {("replace", "/spec/selector/a"), ("add", "/spec/selector/c")}
    assert ops[4] == {"op": "remove", "path": "/spec/selector/b"}


@pytest.mark.parametrize("frm, to", [
    (BLUE, GREEN),  # app+version style
    ({"target": "blue-dep"}, {"target": "green-dep"}),  # target style
    ({"app": "my-app", "version": "blue"}, {"app": "my-app", "color": "green"}),  # a key swapped for another
    ({"app": "my-app"}, {"app": "my-app", "version": "green"}),  # add only
    ({"app": "my-app", "version": "blue"}, {"app": "my-app"}),  # remove only
])
def test_patch_moves_selector_exactly(frm, to):
    svc = service("web", frm)
    out = apply(svc, selector_patch(svc, frm, to, {}))
    assert out["spec"]["selector"] == to
    assert {k: v for k, v in out.items() if k != "spec"} == {k: v for k, v in svc.items() if k != "spec"}
    assert out["spec"]["ports"] == svc["spec"]["ports"]


@pytest.mark.parametrize("existing", [None, {}, {"owner": "team-a", "greenlight.io/release-id": "old"}])
def test_annotations_added_whether_or_not_they_exist(existing):
    svc = service("web", BLUE, annotations=existing)
    assert ("annotations" in svc["metadata"]) is (existing is not None)
    out = apply(svc, selector_patch(svc, BLUE, GREEN, ANN))
    assert out["spec"]["selector"] == GREEN
    assert out["metadata"]["annotations"] == {**(existing or {}), **ANN}
    assert out["metadata"]["name"] == "web" and out["metadata"]["uid"] == svc["metadata"]["uid"]


def test_annotation_ops_shape_without_and_with_map():
    bare = selector_patch(service("web", BLUE), BLUE, GREEN, ANN)
    assert bare[-1] == {"op": "add", "path": "/metadata/annotations", "value": ANN}
    has = selector_patch(service("web", BLUE, annotations={"x": "y"}), BLUE, GREEN, ANN)
    assert has[-2:] == [
        {"op": "add", "path": "/metadata/annotations/greenlight.io~1live-deployment", "value": "my-app-green"},
        {"op": "add", "path": "/metadata/annotations/greenlight.io~1release-id", "value": "r1"},
    ]


def test_annotation_value_is_a_copy():
    ann = dict(ANN)
    ops = selector_patch(service("web", BLUE), BLUE, GREEN, ann)
    ann["greenlight.io/release-id"] = "changed"
    assert ops[-1]["value"]["greenlight.io/release-id"] == "r1"


@pytest.mark.parametrize("key, pointer", [
    ("app.kubernetes.io/name", "app.kubernetes.io~1name"),
    ("a~b", "a~0b"),
    ("a~1b", "a~01b"),  # a literal "~1" must not turn into "/"
    ("x/~y", "x~1~0y"),
    ("plain", "plain"),
])
def test_json_pointer_escaping(key, pointer):
    frm, to = {key: "blue"}, {key: "green"}
    svc = service("web", frm, annotations={"keep": "me"})
    ops = selector_patch(svc, frm, to, {key: "v"})
    assert ops[0] == {"op": "test", "path": f"/spec/selector/{pointer}", "value": "blue"}
    assert ops[1]["path"] == f"/spec/selector/{pointer}"
    assert ops[2]["path"] == f"/metadata/annotations/{pointer}"
    out = apply(svc, ops)
    assert out["spec"]["selector"] == to
    assert out["metadata"]["annotations"] == {"keep": "me", key: "v"}


@pytest.mark.parametrize("annotations", [{}, ANN])
def test_empty_patch_when_already_at_target(annotations):
    assert selector_patch(service("web", GREEN), BLUE, GREEN, annotations) == []


def test_empty_annotations_add_no_op():
    ops = selector_patch(service("web", BLUE), BLUE, GREEN, {})
    assert all(not o["path"].startswith("/metadata") for o in ops)


@pytest.mark.parametrize("actual", [
    {"app": "my-app", "version": "canary"},  # someone moved it elsewhere
    {"app": "other-app", "version": "blue"},  # an unchanged key differs too: still guarded
    {"app": "my-app"},  # the color key is gone
])
def test_test_op_fails_on_mismatched_selector(actual):
    ops = selector_patch(service("web", BLUE), BLUE, GREEN, ANN)  # planned against blue
    moved = service("web", actual)
    before = copy.deepcopy(moved)
    with pytest.raises(jsonpatch.JsonPatchTestFailed):  # value differs, or the member is missing
        jsonpatch.apply_patch(moved, ops, in_place=False)
    assert moved == before


def test_test_op_guards_even_when_the_selector_is_already_partly_green():
    """Half-moved by someone else (app changed, version still blue): the guard must still refuse."""
    ops = selector_patch(service("web", BLUE), BLUE, GREEN, ANN)
    with pytest.raises(jsonpatch.JsonPatchTestFailed, match="app"):
        jsonpatch.apply_patch(service("web", {"app": "x", "version": "blue"}), ops)


def test_patch_is_json_serialisable_for_the_api():
    ops = selector_patch(service("web", BLUE), BLUE, GREEN, ANN)
    assert jsonpatch.JsonPatch(ops).to_string().startswith('[{"op": "test"')
