"""Large manifests as flow parameters (tasks/spec/manifest_param.py, cli/parameters.py): a manifest Kubernetes
accepts travels packed under Prefect's 512 KiB parameter limit and comes back exactly; one that does not fit even
packed is BadInput naming the size and the limit, decided at the input stage; a server's 422 is BadInput too."""

from __future__ import annotations

import base64
import gzip
import json
import secrets
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from prefect_greenlight.cli.main import build_parser, build_spec
from prefect_greenlight.cli.parameters import check_parameter_size, parameter_limit, refused_parameters
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.spec import BlueGreenSpec, parse_spec
from prefect_greenlight.tasks.spec.canary import CanarySpec
from prefect_greenlight.tasks.spec.manifest_param import PACK_ABOVE, PACKED_KEY, compact_json, pack, unpack

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 512 * 1024

# A guard against hangs, not a speed target: the times are measured (under 2 s through the CLI) by
# tests/e2e/test_bad_input.py and quoted in the README; a loaded machine must not fail these.
HANG_GUARD_S = 15


def green(env: list[dict]) -> dict:
    doc = yaml.safe_load((ROOT / "examples/tutorial1/green-dep.yaml").read_text())
    doc["spec"]["template"]["spec"]["containers"][0]["env"] = env
    return doc


def many_vars(n: int = 20_000) -> dict:
    """~1.1 MiB of YAML, 0.87 MiB of JSON: beyond Prefect's limit, well within the apiserver's (etcd 1.5 MiB)."""
    return green([{"name": f"VAR_{i:06d}", "value": f"value-{i}"} for i in range(n)])


def random_blobs(kib: int = 700) -> dict:
    """Incompressible: random base64 values, as an embedded certificate bundle or binary config would be."""
    return green([{"name": f"BLOB_{i}", "value": base64.b64encode(secrets.token_bytes(7000)).decode()}
                  for i in range(kib // 9)])


def as_prefect_sends(params: dict) -> dict:
    """What Prefect's client sends: FastAPI's jsonable_encoder (Flow.serialize_parameters)."""
    from fastapi.encoders import jsonable_encoder

    return {k: jsonable_encoder(v) for k, v in params.items()}


def test_small_manifest_travels_as_itself():
    m = green([{"name": "A", "value": "1"}])
    assert pack(m) is m and len(compact_json(m)) <= PACK_ABOVE


@pytest.mark.parametrize("model, extra", [(BlueGreenSpec, {}), (CanarySpec, {"stable": "my-app-v1"})])
def test_manifest_kubernetes_accepts_travels_packed_and_comes_back_exactly(model, extra):
    m = many_vars()
    assert len(compact_json(m)) > LIMIT
    spec = parse_spec(model, {"service": "web", "manifest": m, **extra})
    sent = as_prefect_sends({"spec": spec, "dry_run": False, "kubeconfig": None, "context": None})
    assert set(sent["spec"]["manifest"]) == {PACKED_KEY}
    size = len(json.dumps(sent, separators=(",", ":")).encode())
    assert size < LIMIT / 2, size
    assert check_parameter_size({"spec": spec, "dry_run": False}, LIMIT) <= size
    back = model.model_validate(json.loads(json.dumps(sent["spec"])))  # a retry, a run from the UI
    assert back.manifest == m and back == spec
    errors = list(jsonschema.Draft202012Validator(model.model_json_schema()).iter_errors(sent["spec"]))
    assert not errors, "the server's schema check must accept the packed form"


def test_in_process_spec_keeps_the_plain_manifest():
    m = many_vars(2_000)
    spec = parse_spec(BlueGreenSpec, {"service": "web", "manifest": m})
    assert spec.manifest == m and spec.model_dump()["manifest"] == m


def test_manifest_too_large_even_packed_is_bad_input_naming_size_and_limit():
    spec = parse_spec(BlueGreenSpec, {"service": "web", "manifest": random_blobs()})
    with pytest.raises(BadInput) as exc:
        check_parameter_size({"spec": spec, "dry_run": False}, LIMIT)
    message = str(exc.value)
    assert message.startswith("spec.manifest: ") and "more than the Prefect server's limit of 524,288 bytes" in message
    size = int(message.split(" parameters are ")[1].split(" bytes")[0].replace(",", ""))
    assert size > LIMIT


def test_limit_comes_from_prefect_settings_and_zero_means_none():
    from prefect.settings import PREFECT_SERVER_API_MAX_PARAMETER_SIZE, temporary_settings

    spec = parse_spec(BlueGreenSpec, {"service": "web", "manifest": green([])})
    with temporary_settings({PREFECT_SERVER_API_MAX_PARAMETER_SIZE: 1000}):
        assert parameter_limit() == 1000
        with pytest.raises(BadInput, match="limit of 1,000 bytes"):
            check_parameter_size({"spec": spec})
    assert check_parameter_size({"spec": spec}, 0) > 1000


def _cli(tmp_path: Path, manifest: dict, *extra: str):
    f = tmp_path / "green.yaml"
    f.write_text(yaml.dump(manifest, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), width=10**9))
    return build_spec(build_parser().parse_args(
        ["blue-green", "-n", "default", "--service", "production-svc", "--manifest", str(f), *extra]))


def test_large_manifest_file_through_the_cli_input_stage(tmp_path):
    start = time.perf_counter()
    spec = _cli(tmp_path, many_vars())
    assert check_parameter_size({"spec": spec, "dry_run": False, "kubeconfig": None, "context": None}, LIMIT) < LIMIT
    assert time.perf_counter() - start < HANG_GUARD_S


@pytest.mark.parametrize("value, needle", [
    ({PACKED_KEY: "not base64!"}, "must be base64 text"),
    ({PACKED_KEY: 42}, "must be base64 text"),
    ({PACKED_KEY: base64.b64encode(b"plain").decode()}, "is not gzip data"),
    ({PACKED_KEY: base64.b64encode(gzip.compress(b"[1, 2]")).decode()}, "holds a list"),
    ({PACKED_KEY: base64.b64encode(gzip.compress(b"{nope")).decode()}, "does not hold JSON"),
    ({PACKED_KEY: base64.b64encode(gzip.compress(b" " * (4 * 1024 * 1024))).decode()}, "unpacks to more than"),
    ({PACKED_KEY: base64.b64encode(gzip.compress(b"[" * 5000 + b"]" * 5000)).decode()}, "does not hold JSON"),
    ({PACKED_KEY: base64.b64encode(gzip.compress(b'{"a":' * 200 + b"1" + b"}" * 200)).decode()}, "nested deeper"),
])
def test_broken_or_hostile_packed_manifest_is_bad_input_naming_the_field(value, needle):
    with pytest.raises(BadInput) as exc:
        parse_spec(BlueGreenSpec, {"service": "web", "manifest": value})
    (problem,) = exc.value.problems
    assert problem.startswith("spec: manifest: ") and needle in problem


def test_a_zip_bomb_is_refused_without_inflating_it():
    bomb = {PACKED_KEY: base64.b64encode(gzip.compress(b"\0" * (32 * 1024 * 1024))).decode()}
    start = time.perf_counter()
    assert "unpacks to more than" in str(pytest.raises(BadInput, parse_spec, BlueGreenSpec,
                                                       {"service": "web", "manifest": bomb}).value)
    assert time.perf_counter() - start < HANG_GUARD_S


def test_unpack_leaves_ordinary_manifests_alone():
    m = {"kind": "Deployment", PACKED_KEY: "x", "other": 1}  # not only the one key: a manifest, not a package
    assert unpack(m) is m


class _Response:
    def __init__(self, status: int, body: dict):
        self.status_code, self._body = status, body

    def json(self) -> dict:
        return self._body


class _HTTPError(Exception):
    def __init__(self, response):
        super().__init__(f"Client error '422 Unprocessable Entity' - Response: {response.json()}")
        self.response = response


def test_a_servers_422_on_parameters_is_bad_input_without_the_echoed_body():
    msg = "Value error, Flow run parameters must be less than 2,000 bytes when serialized (got 5,014 bytes)."
    detail = [{"type": "value_error", "loc": ["body", "parameters"], "input": {"spec": {"manifest": "x" * 10_000}},
               "msg": msg}]
    bad = refused_parameters(_HTTPError(_Response(422, {"exception_detail": detail, "request_body": "x" * 10_000})))
    assert isinstance(bad, BadInput)
    assert str(bad) == ("spec.manifest: the Prefect server refused the flow run's parameters (HTTP 422): Value error, "
                        "Flow run parameters must be less than 2,000 bytes when serialized (got 5,014 bytes); "
                        "nothing was started")


@pytest.mark.parametrize("exc", [
    RuntimeError("boom"),
    _HTTPError(_Response(500, {})),
    _HTTPError(_Response(422, {"exception_detail": [{"loc": ["body", "name"], "msg": "bad name"}]})),
])
def test_other_errors_are_not_taken_for_bad_parameters(exc):
    assert refused_parameters(exc) is None


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_a_manifest_with_a_non_finite_number_is_bad_input_naming_the_path(value):
    """JSON has no infinity or NaN: Kubernetes could not take the manifest, and Prefect would send it as null."""
    from prefect_greenlight.tasks.errors import BadInput
    from prefect_greenlight.tasks.spec import BlueGreenSpec, parse_spec

    manifest = {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"x": [1, value]}}}
    with pytest.raises(BadInput) as err:
        parse_spec(BlueGreenSpec, {"service": "web", "manifest": manifest})
    assert "spec.template.x[1]" in str(err.value) and "finite" in str(err.value)
