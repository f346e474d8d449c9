"""plan_colors (both tutorial styles, refusals, resume after the switch), check_manifest and derive_green."""

from __future__ import annotations

import copy

import pytest

from prefect_greenlight.tasks.decisions.colors import check_manifest, derive_green, plan_colors, swap_color
from prefect_greenlight.tasks.errors import BadInput
from tests.unit.builders import container, deployment, manifest, record_annotations, service

# The two tutorial styles: (service selector, blue pod labels, green pod labels, blue name, green name, keys)
TARGET_STYLE = ({"target": "blue-dep"}, {"target": "blue-dep"}, {"target": "green-dep"},
                "blue-dep", "green-dep", ("target",))
VERSION_STYLE = ({"app": "my-app", "version": "blue"}, {"app": "my-app", "version": "blue"},
                 {"app": "my-app", "version": "green"}, "my-app-blue", "my-app-green", ("version",))


# --------------------------------------------------------------------------- plan_colors

@pytest.mark.parametrize("style", [TARGET_STYLE, VERSION_STYLE], ids=["target", "app+version"])
def test_plan_colors_both_styles(style):
    selector, blue_labels, green_labels, blue_name, green_name, keys = style
    other = deployment("unrelated", {"app": "other"})
    plan = plan_colors(service("web", selector), [other, deployment(blue_name, blue_labels)],
                       manifest(green_name, green_labels))
    assert (plan.service, plan.blue, plan.green, plan.color_keys) == ("web", blue_name, green_name, keys)
    assert plan.blue_selector == selector
    assert plan.green_selector == {k: green_labels[k] for k in selector}
    assert plan.already_live is False
    assert plan.blue_color == ",".join(selector[k] for k in keys)
    assert plan.green_color == ",".join(green_labels[k] for k in keys)


def test_green_selector_ignores_extra_green_labels():
    plan = plan_colors(service("web", {"app": "my-app", "version": "blue"}),
                       [deployment("my-app-blue", {"app": "my-app", "version": "blue", "tier": "web"})],
                       manifest("my-app-green", {"app": "my-app", "version": "green", "track": "x"}))
    assert plan.green_selector == {"app": "my-app", "version": "green"}


def test_existing_green_deployment_is_not_counted_as_live():
    """A re-run before the switch: green already exists in the namespace; blue is still the only live one."""
    sel = {"app": "my-app", "version": "blue"}
    green = manifest("my-app-green", {"app": "my-app", "version": "green"})
    plan = plan_colors(service("web", sel), [deployment("my-app-blue", sel), deployment("my-app-green",
                       {"app": "my-app", "version": "green"})], green)
    assert plan.blue == "my-app-blue"


@pytest.mark.parametrize("selector, deployments, green, needle", [
    (None, [deployment("blue-dep", {"target": "blue-dep"})], manifest("green-dep", {"target": "green-dep"}),
     "has no selector"),
    ({}, [deployment("blue-dep", {"target": "blue-dep"})], manifest("green-dep", {"target": "green-dep"}),
     "has no selector"),
    ({"target": "blue-dep"}, [deployment("other", {"target": "other"})], manifest("green-dep", {"target": "green-dep"}),
     "matches no Deployment"),
    ({"app": "my-app"}, [deployment("a", {"app": "my-app", "version": "blue"}),
                         deployment("b", {"app": "my-app", "version": "canary"})],
     manifest("c", {"app": "my-app", "version": "green"}), "matches both a, b and green 'c'"),
    ({"app": "my-app", "version": "blue"}, [deployment("a", {"app": "my-app", "version": "blue"}),
                                            deployment("b", {"app": "my-app", "version": "blue", "x": "y"})],
     manifest("my-app-green", {"app": "my-app", "version": "green"}), "matches several Deployments (a, b)"),
    ({"app": "my-app", "version": "blue"}, [deployment("my-app-blue", {"app": "my-app", "version": "blue"})],
     manifest("my-app-green", {"app": "my-app", "version": "blue"}), "matches both my-app-blue and green"),
    # green's labels match the selector and nothing else does: green equals blue
    ({"app": "my-app", "version": "blue"}, [deployment("other", {"app": "other"})],
     manifest("my-app-green", {"app": "my-app", "version": "blue"}), "green equals blue"),
    ({"app": "my-app", "version": "blue"}, [deployment("my-app-blue", {"app": "my-app", "version": "blue"})],
     manifest("my-app-green", {"app": "my-app", "color": "green"}), "lack the Service selector key(s) ['version']"),
])
def test_plan_colors_refusals(selector, deployments, green, needle):
    with pytest.raises(BadInput) as exc:
        plan_colors(service("web", selector), deployments, green)
    assert needle in str(exc.value)


def test_resume_after_switch_returns_already_live_plan():
    blue_sel = {"app": "my-app", "version": "blue"}
    green_sel = {"app": "my-app", "version": "green"}
    svc = service("web", green_sel, annotations=record_annotations("my-app-green", "my-app-blue", blue_sel))
    plan = plan_colors(svc, [deployment("my-app-blue", blue_sel), deployment("my-app-green", green_sel)],
                       manifest("my-app-green", green_sel))
    assert plan.already_live is True
    assert (plan.blue, plan.green, plan.color_keys) == ("my-app-blue", "my-app-green", ("version",))
    assert plan.blue_selector == blue_sel and plan.green_selector == green_sel


def test_resume_target_style():
    svc = service("web", {"target": "green-dep"},
                  annotations=record_annotations("green-dep", "blue-dep", {"target": "blue-dep"}))
    plan = plan_colors(svc, [deployment("blue-dep", {"target": "blue-dep"})],
                       manifest("green-dep", {"target": "green-dep"}))
    assert plan.already_live and plan.blue == "blue-dep" and plan.blue_selector == {"target": "blue-dep"}


@pytest.mark.parametrize("annotations", [
    None,  # no record at all
    record_annotations("someone-else", "my-app-blue", {"app": "my-app", "version": "blue"}),  # other live
    {"greenlight.io/live-deployment": "my-app-green"},  # no previous selector
])
def test_selecting_green_without_matching_record_is_refused(annotations):
    green_sel = {"app": "my-app", "version": "green"}
    svc = service("web", green_sel, annotations=annotations)
    with pytest.raises(BadInput, match="green equals blue"):
        plan_colors(svc, [deployment("my-app-blue", {"app": "my-app", "version": "blue"})],
                    manifest("my-app-green", green_sel))


def test_resume_refused_when_another_deployment_also_matches():
    green_sel = {"app": "my-app", "version": "green"}
    svc = service("web", green_sel,
                  annotations=record_annotations("my-app-green", "my-app-blue", {"app": "my-app", "version": "blue"}))
    with pytest.raises(BadInput):
        plan_colors(svc, [deployment("impostor", green_sel)], manifest("my-app-green", green_sel))


# --------------------------------------------------------------------------- check_manifest

def good(**kw):
    return manifest("green-dep", {"target": "green-dep"}, **kw)


def test_check_manifest_accepts_a_good_manifest():
    assert check_manifest(good(), "default") == []
    with_ns = good()
    with_ns["metadata"]["namespace"] = "default"
    assert check_manifest(with_ns, "default") == []


def _set(path: str, value):
    def edit(m):
        *parents, last = path.split(".")
        obj = m
        for p in parents:
            obj = obj[int(p)] if isinstance(obj, list) else obj[p]
        obj[last] = value
    return edit


@pytest.mark.parametrize("edit, needle", [
    (_set("kind", "StatefulSet"), "expected apiVersion apps/v1, kind Deployment"),
    (_set("apiVersion", "apps/v1beta1"), "expected apiVersion apps/v1"),
    (_set("metadata.name", "Green_Dep"), "metadata.name 'Green_Dep'"),
    (_set("metadata.name", "-green"), "metadata.name '-green'"),
    (_set("metadata.name", "g" * 254), "is not a valid Deployment name"),
    (_set("metadata.name", None), "metadata.name None"),
    (_set("metadata.namespace", "prod"), "metadata.namespace 'prod' differs from the release's 'default'"),
    (_set("spec.replicas", 0), "spec.replicas must be a whole number >= 1, got 0"),
    (_set("spec.replicas", -1), "got -1"),
    (_set("spec.replicas", "3"), "got '3'"),
    (_set("spec.replicas", 1.5), "got 1.5"),
    (_set("spec.template.spec.containers.0.image", "UPPER:case"), "containers[0].image 'UPPER:case'"),
    (_set("spec.template.spec.containers.0.image", "nginx:"), "is not a valid image reference"),
    (_set("spec.template.spec.containers.0.image", ""), "containers[0].image ''"),
    (_set("spec.template.spec.containers", [container(), container("side", "a b")]), "containers[1].image 'a b'"),
    (_set("spec.template.spec.containers", []), "containers is empty"),
    (_set("spec.selector.matchLabels", {"target": "blue-dep"}), "does not match the pod labels"),
    (_set("spec.template.metadata.labels", {}), "labels is empty"),
])
def test_check_manifest_problems(edit, needle):
    m = good()
    edit(m)
    problems = check_manifest(m, "default")
    assert any(needle in p for p in problems), problems
    assert all(p.startswith("manifest: ") for p in problems)


def test_check_manifest_reports_all_problems_at_once():
    m = good(replicas=0)
    m["metadata"]["name"] = "Bad"
    m["spec"]["template"]["spec"]["containers"][0]["image"] = "a b"
    assert len(check_manifest(m, "default")) == 3


@pytest.mark.parametrize("value", [[], "Deployment", None, 3])
def test_check_manifest_not_a_mapping(value):
    assert check_manifest(value, "default") == [f"manifest must be a mapping, got {type(value).__name__}"]


def test_check_manifest_rejects_boolean_replicas():
    assert check_manifest(good(replicas=True), "default") != []


def test_check_manifest_rejects_name_with_trailing_newline():
    m = good()
    m["metadata"]["name"] = "green-dep\n"
    assert check_manifest(m, "default") != []


# --------------------------------------------------------------------------- derive_green

def blue_version_style():
    d = deployment("my-app-blue", {"app": "my-app", "version": "blue"}, replicas=4,
                   containers=[container("app", "scubakiz/servicedemo:1.0", env=[{"name": "MODE", "value": "x"}]),
                               container("sidecar", "envoyproxy/envoy:v1.29")],
                   revisionHistoryLimit=5, minReadySeconds=7)
    d["spec"]["template"]["metadata"]["annotations"] = {"prometheus.io/scrape": "true"}
    return d


@pytest.mark.parametrize("name, labels, selector, new_name, key, new_value", [
    ("blue-dep", {"target": "blue-dep"}, {"target": "blue-dep"}, "green-dep", "target", "green-dep"),
    ("my-app-blue", {"app": "my-app", "version": "blue"}, {"app": "my-app", "version": "blue"},
     "my-app-green", "version", "green"),
    # the live color is green: derive blue
    ("my-app-green", {"app": "my-app", "version": "green"}, {"app": "my-app", "version": "green"},
     "my-app-blue", "version", "blue"),
])
def test_derive_green_names_and_labels(name, labels, selector, new_name, key, new_value):
    blue = deployment(name, labels)
    g = derive_green(blue, "nginx:1.27", None, None, None, selector)
    assert g["metadata"]["name"] == new_name
    assert g["spec"]["selector"]["matchLabels"][key] == new_value
    assert g["spec"]["template"]["metadata"]["labels"][key] == new_value
    assert g["metadata"]["labels"][key] == new_value
    others = {k: v for k, v in labels.items() if k != key}
    assert {k: g["spec"]["template"]["metadata"]["labels"][k] for k in others} == others


def test_derive_green_keeps_everything_else_and_does_not_mutate_blue():
    blue = blue_version_style()
    before = copy.deepcopy(blue)
    g = derive_green(blue, "scubakiz/servicedemo:2.0", None, None, None, {"app": "my-app", "version": "blue"})
    assert blue == before
    c0, c1 = g["spec"]["template"]["spec"]["containers"]
    assert c0["image"] == "scubakiz/servicedemo:2.0" and c0["env"] == [{"name": "MODE", "value": "x"}]
    assert c1 == before["spec"]["template"]["spec"]["containers"][1]
    assert g["spec"]["replicas"] == 4 and g["spec"]["minReadySeconds"] == 7
    assert g["spec"]["strategy"] == before["spec"]["strategy"]
    assert g["spec"]["template"]["metadata"]["annotations"] == {"prometheus.io/scrape": "true"}
    assert "revisionHistoryLimit" not in g["spec"]
    assert set(g) == {"apiVersion", "kind", "metadata", "spec"}  # no status
    assert set(g["metadata"]) == {"name", "namespace", "labels"}  # no uid, resourceVersion, revision annotation
    assert (g["apiVersion"], g["kind"], g["metadata"]["namespace"]) == ("apps/v1", "Deployment", "default")


def test_derive_green_named_container():
    g = derive_green(blue_version_style(), "envoyproxy/envoy:v1.30", "sidecar", None, None,
                     {"app": "my-app", "version": "blue"})
    c0, c1 = g["spec"]["template"]["spec"]["containers"]
    assert (c0["image"], c1["image"]) == ("scubakiz/servicedemo:1.0", "envoyproxy/envoy:v1.30")


def test_derive_green_explicit_key_and_value():
    blue = deployment("web", {"app": "web", "track": "stable"})
    g = derive_green(blue, "nginx:1.27", None, "track", "next", {"app": "web", "track": "stable"})
    assert g["metadata"]["name"] == "web-next"
    assert g["spec"]["template"]["metadata"]["labels"] == {"app": "web", "track": "next"}


def test_derive_green_result_passes_plan_colors():
    sel = {"app": "my-app", "version": "blue"}
    blue = deployment("my-app-blue", sel)
    g = derive_green(blue, "nginx:1.27", None, None, None, sel)
    assert check_manifest(g, "default") == []
    assert plan_colors(service("web", sel), [blue], g).color_keys == ("version",)


@pytest.mark.parametrize("blue, container_name, key, value, selector, needle", [
    (deployment("web", {"app": "web"}), None, None, None, {"app": "web"}, "no value of the Service selector"),
    (deployment("web", {"app": "web", "v": "1"}), None, "track", "x", {"app": "web", "v": "1"},
     "color_key 'track' is not a key"),
    (deployment("web", {"app": "web", "v": "1"}), None, "v", None, {"app": "web", "v": "1"},
     "cannot derive green's value for 'v'"),
    (deployment("web", {"app": "web", "v": "blue"}), None, "v", "blue", {"app": "web", "v": "blue"},
     "cannot derive green's value"),
    (deployment("my-app-blue", {"version": "blue"}), "nope", None, None, {"version": "blue"},
     "container 'nope' not found in Deployment 'my-app-blue' (it has app (nginx:1.25))"),
    (deployment("my-app-blue", {"version": "blue"}, replicas=0), None, None, None, {"version": "blue"},
     "has 0 replicas"),
])
def test_derive_green_errors(blue, container_name, key, value, selector, needle):
    with pytest.raises(BadInput) as exc:
        derive_green(blue, "nginx:1.27", container_name, key, value, selector)
    assert needle in str(exc.value)


@pytest.mark.parametrize("value, swapped", [
    ("blue", "green"), ("green", "blue"), ("blue-dep", "green-dep"), ("my-app-green", "my-app-blue"),
    ("stable", None), ("", None),
])
def test_swap_color(value, swapped):
    assert swap_color(value) == swapped


def test_derive_green_prefers_the_key_whose_value_is_a_color():
    sel = {"app": "bluegreen-demo", "version": "blue"}
    g = derive_green(deployment("demo-blue", sel), "nginx:1.27", None, None, None, sel)
    assert g["spec"]["template"]["metadata"]["labels"] == {"app": "bluegreen-demo", "version": "green"}
