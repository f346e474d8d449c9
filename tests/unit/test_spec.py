"""BlueGreenSpec validation through parse_spec, valid_image, and load_yaml_documents."""

from __future__ import annotations

import pytest

from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.spec import BlueGreenSpec, load_yaml_documents, parse_spec, valid_image

BASE = {"service": "web", "image": "nginx:1.27"}
MANIFEST = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "green-dep"}}


def problems(data: dict) -> list[str]:
    with pytest.raises(BadInput) as exc:
        parse_spec(BlueGreenSpec, data)
    return exc.value.problems


def test_defaults_resolved():
    s = parse_spec(BlueGreenSpec, BASE)
    assert (s.namespace, s.service, s.image, s.manifest) == ("default", "web", "nginx:1.27", None)
    assert len(s.smoke) == 1 and s.smoke[0].path == "/" and s.smoke[0].expect_status == 200
    assert (s.deadlines.unschedulable_grace_s, s.deadlines.image_pull_grace_s, s.deadlines.crash_restarts) == (
        60, 15, 2)


def test_manifest_mode_accepted():
    s = parse_spec(BlueGreenSpec, {"service": "web", "manifest": MANIFEST})
    assert s.manifest == MANIFEST and s.image is None


@pytest.mark.parametrize("data", [
    {"service": "web"},
    {"service": "web", "image": "nginx", "manifest": MANIFEST},
])
def test_exactly_one_of_manifest_or_image(data):
    (p,) = problems(data)
    assert p.startswith("spec: (root): ") and "exactly one of manifest" in p and "image" in p


@pytest.mark.parametrize("ref", [
    "nginx", "nginx:1.25", "scubakiz/servicedemo:1.0", "registry.local:5000/team/app:v2", "localhost/app",
    "app@sha256:" + "0123456789abcdef" * 4, "ghcr.io/org/app:v1@sha256:" + "a" * 64, "my_app/x__y:latest",
    "a-b.c/d:Tag_1.2-rc",
])
def test_valid_images(ref):
    assert valid_image(ref)
    assert parse_spec(BlueGreenSpec, {"service": "web", "image": ref}).image == ref


@pytest.mark.parametrize("ref", [
    "a b", "x:", "@sha256:zz", "app@sha256:zz", "Nginx", "team/App:1", "nginx:1.0:2", ":latest", "", "/app",
    "app/", "nginx:" + "t" * 129, "nginx:-bad", "a..b",
])
def test_invalid_images_rejected_naming_the_field(ref):
    (p,) = problems({"service": "web", "image": ref})
    assert p.startswith("spec: image: ") and "not a valid image reference" in p
    assert not valid_image(ref)


# Like upstream distribution/reference (splitDockerDomain), 'UPPER/case' is registry host 'UPPER' + repo 'case':
# accepted here, failing later at pull time. An upper-case repository path is refused.
def test_upper_case_first_component_is_a_registry_host_as_upstream():
    assert valid_image("UPPER/case")
    assert not valid_image("team/UPPER")
    (p,) = problems({"service": "web", "image": "team/UPPER"})
    assert p.startswith("spec: image: ")


def test_trailing_newline_rejected():
    assert not valid_image("nginx:1.27\n")


def test_short_sha256_digest_rejected():
    assert not valid_image("app@sha256:" + "a" * 32)


@pytest.mark.parametrize("data, expected", [
    ({**BASE, "deadlines": {"ready_s": -1}}, "spec: deadlines.ready_s: "),
    ({**BASE, "deadlines": {"ready_s": 0}}, "spec: deadlines.ready_s: "),
    ({**BASE, "deadlines": {"image_pull_grace_s": -0.5}}, "spec: deadlines.image_pull_grace_s: "),
    ({**BASE, "deadlines": {"crash_restarts": -1}}, "spec: deadlines.crash_restarts: "),
    ({**BASE, "deadlines": {"unschedulable_grace_s": 86401}}, "spec: deadlines.unschedulable_grace_s: "),
    ({**BASE, "smoke": [{"attempts": -2}]}, "spec: smoke.0.attempts: "),
    ({**BASE, "smoke": [{}, {"max_latency_ms": -5}]}, "spec: smoke.1.max_latency_ms: "),
    ({**BASE, "smoke": [{"port": 70000}]}, "spec: smoke.0.port: "),
    ({**BASE, "smoke": [{"path": "healthz"}]}, "spec: smoke.0.path: "),
    ({**BASE, "smoke": [{"body_regex": "(unclosed"}]}, "spec: smoke.0.body_regex: "),
    ({**BASE, "post_switch": {"window_s": -5}}, "spec: post_switch.window_s: "),
    ({**BASE, "approval": {"timeout_s": -1}}, "spec: approval.timeout_s: "),
    ({**BASE, "approval": {"mode": "sometimes"}}, "spec: approval.mode: "),
    ({**BASE, "service": "Web_1"}, "spec: service: "),
    ({**BASE, "namespace": "-ns"}, "spec: namespace: "),
    ({**BASE, "preview_service": "web"}, "spec: (root): "),
])
def test_out_of_range_values_name_their_path(data, expected):
    ps = problems(data)
    assert len(ps) == 1 and ps[0].startswith(expected), ps


@pytest.mark.parametrize("data, path", [
    ({**BASE, "bogus": 1}, "spec: bogus: Extra inputs are not permitted"),
    ({**BASE, "deadlines": {"ready": 10}}, "spec: deadlines.ready: Extra inputs are not permitted"),
    ({**BASE, "smoke": [{"paht": "/"}]}, "spec: smoke.0.paht: Extra inputs are not permitted"),
])
def test_unknown_fields_rejected(data, path):
    assert problems(data) == [path]


def test_all_problems_reported_at_once():
    ps = problems({**BASE, "bogus": 1, "deadlines": {"ready_s": -1}, "smoke": [{"attempts": 0}]})
    assert sorted(p.split(":")[1].strip() for p in ps) == ["bogus", "deadlines.ready_s", "smoke.0.attempts"]


def test_source_prefix():
    with pytest.raises(BadInput, match=r"^release\.yaml: bogus: "):
        parse_spec(BlueGreenSpec, {**BASE, "bogus": 1}, source="release.yaml")


def test_spec_is_frozen():
    s = parse_spec(BlueGreenSpec, BASE)
    with pytest.raises(Exception):
        s.image = "other"
    assert s.image == "nginx:1.27"


# --------------------------------------------------------------------------- load_yaml_documents

def test_load_yaml_documents_multi(tmp_path):
    f = tmp_path / "green.yaml"
    f.write_text("---\napiVersion: v1\nkind: Service\n---\n---\napiVersion: apps/v1\nkind: Deployment\n")
    assert [d["kind"] for d in load_yaml_documents(f)] == ["Service", "Deployment"]


@pytest.mark.parametrize("text, needle", [
    ("a: [1, 2\n", "is not valid YAML"),
    ("key: value\n  bad indent: x\n", "is not valid YAML"),
    ("", "holds no YAML document"),
    ("---\n# only a comment\n---\n", "holds no YAML document"),
    ("- a\n- b\n", "document 1 is a list, not a mapping"),
    ("a: 1\n---\njust a string\n", "document 2 is a str, not a mapping"),
])
def test_load_yaml_documents_bad_input_names_file(tmp_path, text, needle):
    f = tmp_path / "release.yaml"
    f.write_text(text)
    with pytest.raises(BadInput) as exc:
        load_yaml_documents(f)
    assert str(f) in str(exc.value) and needle in str(exc.value)


def test_load_yaml_documents_missing_file(tmp_path):
    f = tmp_path / "nope.yaml"
    with pytest.raises(BadInput, match="cannot read .*nope.yaml: No such file"):
        load_yaml_documents(f)


@pytest.mark.parametrize("ref,ok", [
    ("nginx:1.27", True), ("registry.example.com:5000/team/app:v1", True), ("UPPER/case", True),
    ("app@sha256:" + "a" * 64, True), ("not an image", False), ("team/UPPER", False), ("app:", False),
    ("app@sha256:" + "a" * 32, False), ("-app", False),
])
def test_json_schema_of_image_agrees_with_the_validator(ref, ok):
    """The Prefect server validates deployment parameters with the JSON schema (the model's validators only run
    in the flow run): both must draw the same line, so a bad image is refused before a run exists."""
    import jsonschema

    schema = BlueGreenSpec.model_json_schema()
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors({"service": "web", "image": ref}))
    assert (not errors) is ok and valid_image(ref) is ok
