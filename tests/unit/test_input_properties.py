"""Property-based (hypothesis): whatever the YAML text, the file bytes, the spec data or the command-line flags,
the outcome is a valid spec (which survives the trip through Prefect's parameters) or a BadInput naming the file,
the flag or the field — never another exception — within hypothesis' deadline (10 s: a guard against hangs on a
loaded machine; the acceptance bound of 2 s is measured through the CLI in tests/e2e/test_bad_input.py)."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from prefect_greenlight.cli.canary import build_canary_spec
from prefect_greenlight.cli.main import build_parser, build_spec
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.spec import BlueGreenSpec, load_yaml_documents, parse_spec
from prefect_greenlight.tasks.spec.canary import CanarySpec
from prefect_greenlight.tasks.spec.loading import parse_yaml
from prefect_greenlight.tasks.spec.manifest_param import PACKED_KEY

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = settings(deadline=timedelta(seconds=10), max_examples=150, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

TOKENS = ["a", "b", "1", "-1", "0x1f", "0755", "1:20", "1e3", ".inf", ".nan", "yes", "~", "null", "true", "<<",
          "2024-05-01", "é", "\u2028", "\t", " ", "  ", "\n", "\n  ", "\n- ", "- ", ": ", ":", ",", "[", "]", "{",
          "}", "? ", "&a ", "*a", "&b ", "*b", "!!str ", "!!int ", "!!binary ", "!!set ", "!x ", "! ", "|", ">",
          "'", '"', "#", "%YAML 1.1\n", "---\n", "...\n", "\\", "@", "`", "\x00", "\x07", "\ufeff", "kind",
          "Deployment", "service", "image", "nginx:1", "smoke", "port", "80", "http", "metadata", "name"]
yaml_text = st.lists(st.sampled_from(TOKENS), max_size=80).map("".join) | st.text(max_size=200)

FIELDS = ["namespace", "service", "manifest", "image", "container", "color_key", "green_value", "smoke",
          "preview_service", "approval", "post_switch", "cleanup", "on_failure", "deadlines", "release_id",
          "lock_wait_s", "stable", "steps", "total", "analysis", "bogus"]
NESTED = ["mode", "timeout_s", "delay_s", "ready_s", "path", "port", "service_port", "body_regex", "attempts",
          "http", "prometheus", "kind", "metadata", "spec", PACKED_KEY, "x"]
scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() |
           st.sampled_from(["web", "nginx:1.27", "Web_1", "", "/", "a{9999999999}", "(", "manual", "delete",
                            "10", "nginx:tägé", "[::1]:5000/r", "x" * 300]) | st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(NESTED) | st.text(max_size=6), inner, max_size=4), max_leaves=25)
seconds = st.integers(1, 100) | st.floats(1, 86400)  # valid; invalid values come from json_values
PLAUSIBLE = {
    "namespace": st.sampled_from(["default", "team-a", "-bad"]),
    "manifest": st.dictionaries(st.sampled_from(["apiVersion", "kind", "metadata", "spec", PACKED_KEY]), json_values,
                                max_size=4),
    "image": st.sampled_from(["nginx:1", "r.io:5000/a/b:v1", "[::1]:5000/r@sha256:" + "a" * 64, "Nginx", "x:"]),
    "smoke": st.lists(st.fixed_dictionaries({}, optional={
        "path": st.sampled_from(["/", "/health", "x"]), "port": st.sampled_from([80, 0, "http", "HTTP", 70000]),
        "attempts": st.integers(-1, 200), "body_regex": st.sampled_from(["ok", "(", "a{9999999999}"]),
        "timeout_s": seconds}), max_size=3),
    "approval": st.fixed_dictionaries({}, optional={"mode": st.sampled_from(["auto", "manual", "timed", "x"]),
                                                    "timeout_s": seconds}),
    "cleanup": st.fixed_dictionaries({}, optional={"mode": st.sampled_from(["keep", "delete", "x"]),
                                                   "delay_s": seconds}),
    "deadlines": st.fixed_dictionaries({}, optional={k: seconds for k in ("ready_s", "image_pull_grace_s")}),
    "steps": st.lists(st.integers(-5, 120), max_size=5), "total": st.integers(-1, 20000),
    "release_id": st.sampled_from(["r1", "r.1-x", "-r", "r" * 64]), "lock_wait_s": seconds,
}
SOURCES = [{"service": "web", "image": "nginx:1"}, {"service": "web", "stable": "v1", "image": "nginx:1"},
           {"service": "web", "stable": "v1", "manifest": {"kind": "Deployment"}}, {}]


@st.composite
def spec_data(draw) -> dict:
    """A source (or none), anything in up to two fields, then near-valid values in a few: mostly refused, often
    enough a valid spec."""
    data = dict(draw(st.sampled_from(SOURCES)))
    data.update(draw(st.just({}) | st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=2)))
    for key in draw(st.lists(st.sampled_from(sorted(PLAUSIBLE)), max_size=4, unique=True)):
        data[key] = draw(PLAUSIBLE[key])
    return data


def _assert_names_what(exc: BadInput, *sources: str) -> None:
    """A BadInput names the file, flag or field: every problem is a non-empty line that starts with (or carries)
    one of the input's names."""
    assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
    markers = (*sources, "argument", "--", "spec", "arguments", "manifest")
    for p in exc.problems:
        assert any(m in p for m in markers), p


@SETTINGS
@given(yaml_text)
def test_any_yaml_text_is_documents_or_bad_input_naming_the_file(text):
    try:
        docs = parse_yaml(text, "given.yaml")
    except BadInput as exc:
        assert str(exc).startswith("given.yaml "), exc
        event("bad input")
        return
    event("documents")
    json.dumps(docs)  # what was loaded is JSON, as Kubernetes reads it: no dates, no infinities, no bytes


@SETTINGS
@given(st.binary(max_size=300) | yaml_text.map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_file_bytes_are_mappings_or_bad_input_naming_the_file(content):
    fd, path = tempfile.mkstemp(suffix=".yaml")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        try:
            docs = load_yaml_documents(path)
        except BadInput as exc:
            assert path in str(exc), exc
            return
        assert docs and all(isinstance(d, dict) for d in docs)
    finally:
        os.unlink(path)


def _valid_or_named(model, data: dict) -> None:
    try:
        spec = parse_spec(model, data)
    except BadInput as exc:
        assert all(p.startswith("spec: ") and p.count(": ") >= 2 for p in exc.problems), exc.problems
        event("bad input")
        return
    event("spec")
    from fastapi.encoders import jsonable_encoder  # what Prefect's client sends as the parameter

    sent = json.loads(json.dumps(jsonable_encoder(spec)))
    assert model.model_validate(sent) == spec


@SETTINGS
@given(spec_data())
def test_any_spec_data_is_a_valid_blue_green_spec_or_bad_input_naming_the_field(data):
    _valid_or_named(BlueGreenSpec, data)


@SETTINGS
@given(spec_data())
def test_any_spec_data_is_a_valid_canary_spec_or_bad_input_naming_the_field(data):
    _valid_or_named(CanarySpec, data)


def _options(command: str) -> list[tuple[str, bool]]:
    """(flag, takes a value) for every option of a subcommand, read from the parser itself."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return [(a.option_strings[-1], a.nargs != 0) for a in sub._actions if a.option_strings and "--help" not in
            a.option_strings]


flag_values = st.sampled_from(["web", "production-svc", "nginx:1", "5", "-5", "0", "1e999", "nan", "inf", "80",
                               "http", "10,30,100", "30,10", "manual", "bogus", "", " ", "--", "-n", "²", "١٢",
                               "a" * 300, "nginx:tägé", "/", "/health"]) | st.text(max_size=10)


GREEN = (ROOT / "examples/tutorial1/green-dep.yaml").read_text()
BASES = [[], ["--service", "web", "--image", "nginx:1"], ["--service", "web", "--manifest", "<manifest>"],
         ["--service", "web", "--spec", "<spec>"]]
file_text = yaml_text | st.just(GREEN) | st.just("service: web\nimage: nginx:1\nstable: v1\n")


def _build(command: str, base: list[str], pairs, manifest_text: str, spec_text: str, tmp: str):
    files = {"--manifest": os.path.join(tmp, "m.yaml"), "--spec": os.path.join(tmp, "s.yaml")}
    for flag, text in (("--manifest", manifest_text), ("--spec", spec_text)):
        with open(files[flag], "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(text)
    argv = [{"<manifest>": files["--manifest"], "<spec>": files["--spec"]}.get(a, a) for a in base]
    argv += ["--stable", "v1"] if command == "canary" and base else []
    for (flag, takes_value), value in pairs:
        if flag in files:
            argv += [flag, files[flag]]
        elif flag not in ("-n", "--namespace", "--kubeconfig", "--context"):
            argv += [flag, value] if takes_value else [flag]
    try:
        args = build_parser().parse_args([command, "-n", "default", *argv])
        spec = build_spec(args) if command == "blue-green" else build_canary_spec(args, "default")
    except BadInput as exc:
        _assert_names_what(exc, *files.values())
        event("bad input")
        return
    event("spec")
    assert isinstance(spec, BlueGreenSpec if command == "blue-green" else CanarySpec)


@pytest.mark.parametrize("command", ["blue-green", "canary"])
def test_any_flags_build_a_spec_or_bad_input_naming_the_flag_or_field(command, capsys):
    @SETTINGS
    @given(st.sampled_from(BASES), st.lists(st.tuples(st.sampled_from(_options(command)), flag_values), max_size=6),
           file_text, file_text)
    def check(base, pairs, manifest_text, spec_text):
        with tempfile.TemporaryDirectory() as tmp:
            _build(command, base, pairs, manifest_text, spec_text, tmp)

    check()
