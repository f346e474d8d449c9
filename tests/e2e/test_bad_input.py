"""Bad input: exit code 2, a message naming what is wrong, and nothing changed in the cluster (every
resourceVersion in the namespace compared before and after; no Lease appears)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.e2e.release_helpers import TUTORIAL1, given_ready, greenlight, resource_versions, tutorial1

pytestmark = pytest.mark.usefixtures("prefect_api")


def _green(tmp_path: Path, mutate) -> str:
    doc = yaml.safe_load((TUTORIAL1 / "green-dep.yaml").read_text())
    mutate(doc)
    path = tmp_path / "green.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _file(tmp_path: Path, text: str, name: str = "f.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


GREEN = str(TUTORIAL1 / "green-dep.yaml")
CASES = {
    "malformed-yaml": (lambda t: ["--service", "production-svc", "--manifest", _file(t, "kind: Deployment\n  x: [")],
                       "is not valid YAML"),
    "wrong-kind": (lambda t: ["--service", "production-svc", "--manifest", str(TUTORIAL1 / "production-svc-blue.yaml")],
                   "expected exactly one Deployment, found kinds: Service"),
    "unknown-service": (lambda t: ["--service", "nope-svc", "--manifest", GREEN], "Service 'nope-svc' not found"),
    "selector-matches-both": (lambda t: ["--service", "both-svc", "--manifest", GREEN], "matches both blue-dep"),
    "service-without-selector": (lambda t: ["--service", "nosel-svc", "--manifest", GREEN], "has no selector"),
    "invalid-image-flag": (lambda t: ["--service", "production-svc", "--image", "Not An/Image"],
                           "image: Value error, 'Not An/Image' is not a valid image reference"),
    "invalid-image-in-manifest": (lambda t: ["--service", "production-svc", "--manifest", _green(
        t, lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="bad image"))],
        "containers[0].image 'bad image' is not a valid image reference"),
    "negative-delay": (lambda t: ["--service", "production-svc", "--manifest", GREEN, "--scale-down-delay", "-5"],
                       "cleanup.delay_s: Input should be greater than or equal to 0"),
    "zero-replicas": (lambda t: ["--service", "production-svc", "--manifest", _green(
        t, lambda d: d["spec"].update(replicas=0))], "spec.replicas must be a whole number >= 1"),
    "green-equals-blue": (lambda t: ["--service", "production-svc", "--manifest", str(TUTORIAL1 / "blue-dep.yaml")],
                          "green equals blue"),
    "labels-lack-selector-key": (lambda t: ["--service", "production-svc", "--manifest", _green(
        t, lambda d: (d["spec"]["template"]["metadata"]["labels"].pop("target"),
                      d["spec"]["selector"]["matchLabels"].update(color="green"),
                      d["spec"]["selector"]["matchLabels"].pop("target")))],
        "lack the Service selector key(s) ['target']"),
    "unknown-namespace": (lambda t: ["--service", "production-svc", "--manifest", GREEN, "-n", "no-such-ns"],
                          "namespace 'no-such-ns' not found"),
    "manifest-namespace-mismatch": (lambda t: ["--service", "production-svc", "--manifest", _green(
        t, lambda d: d["metadata"].update(namespace="elsewhere"))], "differs from the release's"),
    "spec-unknown-field": (lambda t: ["--spec", _file(t, "service: production-svc\nimage: nginx:1\nbogus: 1\n")],
                           "bogus: Extra inputs are not permitted"),
    "both-manifest-and-image": (lambda t: ["--service", "production-svc", "--manifest", GREEN, "--image", "nginx"],
                                "not allowed with argument"),
    "no-source": (lambda t: ["--service", "production-svc"], "give exactly one of manifest"),
    "missing-service": (lambda t: ["--manifest", GREEN], "--service is required"),
    "bad-approval-mode": (lambda t: ["--service", "production-svc", "--manifest", GREEN, "--approval", "maybe"],
                          "invalid choice: 'maybe'"),
    "bad-service-name": (lambda t: ["--service", "Bad_Name", "--manifest", GREEN], "service: String should match"),
    "missing-manifest-file": (lambda t: ["--service", "production-svc", "--manifest", "/nonexistent/green.yaml"],
                              "cannot read /nonexistent/green.yaml"),
    "empty-manifest": (lambda t: ["--service", "production-svc", "--manifest", _file(t, "---\n")],
                       "holds no YAML document"),
    "timeout-zero": (lambda t: ["--service", "production-svc", "--manifest", GREEN, "--ready-timeout", "0"],
                     "deadlines.ready_s: Input should be greater than 0"),
    "image-mode-no-color": (lambda t: ["--service", "plain-svc", "--image", "nginx:1"],
                            "no value of the Service selector"),
    "apiserver-rejects-manifest": (lambda t: ["--service", "production-svc", "--manifest", _green(
        t, lambda d: d["spec"]["template"]["spec"]["containers"][0].update(ports=[{"containerPort": 70000}]))],
        "the apiserver rejects green Deployment 'green-dep'"),
    "preview-is-live-service": (lambda t: ["--service", "production-svc", "--manifest", GREEN,
                                           "--preview-service", "production-svc"], "preview_service must differ"),
    # issue 13: refused by preflight inside the flow run (it reads the cluster), so not among the timed HOSTILE
    "image-not-ascii-in-manifest": (lambda t: ["--service", "production-svc", "--manifest", _green(
        t, lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="servicedemo:grün"))],
        "containers[0].image 'servicedemo:grün' is not a valid image reference"),
}


@pytest.fixture(scope="module")
def setup(kube, cluster):
    """One namespace for every case: none of them may change it, which each case checks."""
    import subprocess
    import uuid

    namespace = f"t-bad-input-{uuid.uuid4().hex[:5]}"
    kube.core.create_namespace({"metadata": {"name": namespace}})
    given_ready_sa(kube, namespace)

    def kubectl(*args):
        subprocess.run([cluster.kubectl, f"--kubeconfig={cluster.kubeconfig}", "-n", namespace, *args],
                       check=True, capture_output=True, timeout=60)

    tutorial1(kubectl, kube, namespace)
    extra = [
        {"metadata": {"name": "both-svc"}, "spec": {"selector": {"app": "status"}, "ports": [{"port": 80}]}},
        {"metadata": {"name": "nosel-svc"}, "spec": {"ports": [{"port": 80}]}},
        {"metadata": {"name": "plain-svc"}, "spec": {"selector": {"target": "plain"}, "ports": [{"port": 80}]}},
    ]
    for svc in extra:
        kube.core.create_namespaced_service(namespace, {"apiVersion": "v1", "kind": "Service", **svc})
    labels = {"target": "plain"}
    kube.apps.create_namespaced_deployment(namespace, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "plain"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}}})
    given_ready(kube, namespace, "plain")
    yield namespace
    kube.core.delete_namespace(namespace)


def given_ready_sa(kube, namespace: str) -> None:
    import time

    deadline = time.monotonic() + 30
    while not kube.core.list_namespaced_service_account(namespace).items:
        assert time.monotonic() < deadline, f"no default ServiceAccount in {namespace}"
        time.sleep(0.1)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_2_and_changes_nothing(case, setup, kube, cluster, prefect_api, tmp_path):
    namespace = setup
    args_of, expected = CASES[case]
    args = args_of(tmp_path)
    if "-n" not in args:
        args += ["-n", namespace]
    before = resource_versions(kube, namespace)
    proc = greenlight(cluster, prefect_api, "blue-green", *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert expected in proc.stderr, proc.stderr[-2000:]
    assert resource_versions(kube, namespace) == before


# --------------------------------------------------------------------------- hostile input (issue 13)
# Each: exit 2, the file/field named, nothing changed, under 2 s (measured in the CLI process, imports included)
# and a bounded peak RSS (the same process's VmHWM).

HOSTILE_SECONDS, HOSTILE_PEAK_MIB = 2.0, 256
# Reading Prefect's parameter limit imports Prefect (1.5 s measured on the 2-core machine): that case alone is
# allowed the import on top (measured 1.75 s in all, 87 MiB); every other case is refused before Prefect loads.
NEEDS_PREFECT_SECONDS = 4.0


def _bytes(tmp_path: Path, content: bytes, name: str = "f.yaml") -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def _billion_laughs() -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: green-dep}\n" + "\n".join(lines) + "\n"


def _incompressible_green(tmp_path: Path) -> str:
    import base64
    import secrets

    return _green(tmp_path, lambda d: d["spec"]["template"]["spec"]["containers"][0].update(env=[
        {"name": f"BLOB_{i}", "value": base64.b64encode(secrets.token_bytes(7000)).decode()} for i in range(80)]))


def _svc(*args: str) -> list[str]:
    return ["--service", "production-svc", *args]


HOSTILE = {
    "binary-manifest": (lambda t: _svc("--manifest", _bytes(t, b"\x7fELF\x02\x01\x01\x00\x00\x00")),
                        "is a binary file, not YAML text"),
    "non-utf8-manifest": (lambda t: _svc("--manifest", _bytes(t, "kind: Deployment\nx: caf\xe9\n".encode("latin-1"))),
                          "is not UTF-8 text: byte 0xe9"),
    "directory-as-manifest": (lambda t: _svc("--manifest", str(t)), "it is a directory, not a file"),
    "zero-byte-manifest": (lambda t: _svc("--manifest", _bytes(t, b"")), "holds no YAML document"),
    "oversized-manifest": (lambda t: _svc("--manifest", _bytes(t, b"# " + b"x" * (3 * 1024 * 1024))),
                           "is larger than 3,145,728 bytes"),
    "alias-bomb-manifest": (lambda t: _svc("--manifest", _file(t, _billion_laughs())),
                            "more than 200,000 nodes in all after alias expansion"),
    "alias-bomb-spec": (lambda t: ["--spec", _file(t, "service: production-svc\nimage: nginx:1\n" + _billion_laughs()
                                                   .split("\n", 3)[3])], "after alias expansion"),
    "duplicate-key-manifest": (lambda t: _svc("--manifest", _file(t, (TUTORIAL1 / "green-dep.yaml").read_text()
                                                                  .replace("  name: green-dep\n", "  name: green-dep\n"
                                                                           "  name: blue-dep\n", 1))),
                               "line 5: duplicate key 'name' (first at line 4)"),
    "duplicate-key-spec": (lambda t: ["--spec", _file(t, "service: production-svc\nimage: nginx:1\nservice: x\n")],
                           "duplicate key 'service'"),
    "deep-nesting-manifest": (lambda t: _svc("--manifest", _file(t, "kind: Deployment\nspec: " + "[" * 150
                                                                  + "]" * 150 + "\n")),
                              "nested deeper than 100 levels"),
    "infinite-number-in-spec": (lambda t: ["--spec", _file(t, "service: production-svc\nimage: nginx:1\n"
                                                              "deadlines: {ready_s: .inf}\n")],
                                "is not a finite number"),
    "flag-into-a-scalar-field": (lambda t: ["--spec", _file(t, "service: production-svc\nimage: nginx:1\n"
                                                               "approval: manual\n"), "--approval-timeout", "5"],
                                 "spec: approval: is a str, not a mapping"),
    "regex-overflow-in-spec": (lambda t: ["--spec", _file(t, "service: production-svc\nimage: nginx:1\n"
                                                             "smoke: [{body_regex: 'a{9999999999}'}]\n")],
                               "smoke.0.body_regex: Value error, invalid regular expression"),
    "manifest-too-large-for-prefect": (lambda t: _svc("--manifest", _incompressible_green(t)),
                                       "more than the Prefect server's limit of 524,288 bytes"),
    "image-not-ascii": (lambda t: _svc("--image", "nginx:tägé"), "image: Value error, 'nginx:tägé' is not a valid"),
    "image-sha512-too-short": (lambda t: _svc("--image", "nginx@sha512:" + "a" * 64), "is not a valid image"),
    "image-name-too-long": (lambda t: _svc("--image", "a/" * 128 + "a:tag"), "is not a valid image reference"),
}

# Peak RSS from /proc's VmHWM: ru_maxrss would also count what the forking parent had before exec.
_MEASURED = """
import re, sys, time
start = time.perf_counter()
from prefect_greenlight.cli.main import main
code = main(sys.argv[1:])
hwm_kib = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
sys.stderr.write(f"\\nmeasured: {time.perf_counter() - start:.3f} s, peak {hwm_kib / 1024:.1f} MiB\\n")
sys.stderr.flush()
import os
os._exit(code)
"""


def _measured_greenlight(cluster, prefect_api: str, *args: str):
    """The CLI's main() in a fresh interpreter, reporting its own run time and peak RSS on the last line."""
    import subprocess
    import sys

    from tests.e2e.release_helpers import ROOT, cli_env

    proc = subprocess.run([sys.executable, "-c", _MEASURED, *args], capture_output=True, text=True, timeout=120,
                          env=cli_env(cluster, prefect_api), cwd=ROOT)
    last = proc.stderr.strip().splitlines()[-1]
    seconds, peak = float(last.split()[1]), float(last.split("peak ")[1].split()[0])
    return proc, seconds, peak


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_input_exits_2_fast_in_bounded_memory_and_changes_nothing(case, setup, kube, cluster, prefect_api,
                                                                          tmp_path):
    namespace = setup
    args_of, expected = HOSTILE[case]
    args = [*args_of(tmp_path), "-n", namespace]
    before = resource_versions(kube, namespace)
    proc, seconds, peak_mib = _measured_greenlight(cluster, prefect_api, "blue-green", *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert expected in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    assert len(proc.stderr) < 4000, "the error names the problem; it does not echo the input"
    assert seconds < (NEEDS_PREFECT_SECONDS if case == "manifest-too-large-for-prefect" else HOSTILE_SECONDS), \
        proc.stderr[-500:]
    assert peak_mib < HOSTILE_PEAK_MIB, proc.stderr[-500:]
    assert resource_versions(kube, namespace) == before


def test_canary_refuses_an_alias_bomb_too(setup, kube, cluster, prefect_api, tmp_path):
    namespace = setup
    before = resource_versions(kube, namespace)
    proc, seconds, _ = _measured_greenlight(cluster, prefect_api, "canary", "-n", namespace, "--service",
                                            "production-svc", "--stable", "blue-dep", "--manifest",
                                            _file(tmp_path, _billion_laughs()))
    assert proc.returncode == 2 and "after alias expansion" in proc.stderr, proc.stderr[-2000:]
    assert seconds < HOSTILE_SECONDS
    assert resource_versions(kube, namespace) == before


def test_large_manifest_that_kubernetes_accepts_is_released(cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    """Not bad input: a green Deployment of 14,000 environment variables (~0.6 MiB of JSON, over Prefect's 512 KiB
    parameter limit, well within the apiserver's) travels packed and releases."""
    import json

    from tests.e2e.release_helpers import greenlight, selector, tutorial1

    tutorial1(kubectl, kube, namespace)
    big = _green(tmp_path, lambda d: (d["spec"].update(replicas=1), d["spec"]["template"]["spec"]["containers"][0][
        "env"].extend({"name": f"VAR_{i:06d}", "value": f"value-{i}"} for i in range(14_000))))
    r = greenlight(cluster, prefect_api, "blue-green", "-n", namespace, "--service", "production-svc",
                   "--manifest", big, "--scale-down-delay", "1", "--json")
    assert r.returncode == 0, r.stderr[-4000:]
    assert json.loads(r.stdout)["live_deployment"] == "green-dep"
    assert selector(kube, namespace, "production-svc") == {"target": "green-dep"}
