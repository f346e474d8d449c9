"""Hostile input (issue 13): files that are not text, YAML that would expand, nest or repeat beyond its bounds,
and manifests too large for Prefect's parameters. Each is refused as BadInput naming the file (and line) or the
field; what Kubernetes would accept loads. Bounds: tasks/spec/loading.py and tasks/spec/yaml_bounded.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.spec import load_yaml_documents
from prefect_greenlight.tasks.spec.loading import MAX_FILE_BYTES, parse_yaml, read_text
from prefect_greenlight.tasks.spec.yaml_bounded import MAX_ALIASES, MAX_DEPTH, MAX_NODES

ROOT = Path(__file__).resolve().parents[2]

# A guard against hangs, not a speed target: the times are measured (under 2 s through the CLI) by
# tests/e2e/test_bad_input.py and quoted in the README; a loaded machine must not fail these.
HANG_GUARD_S = 15


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """The classic: `levels` anchors, each a list of `width` aliases of the one before (width**levels strings)."""
    lines = ["a0: &a0 [" + ",".join(['"lol"'] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: green-dep}\n" + "\n".join(lines) + "\n"


def refused(text: str, source: str = "f.yaml") -> str:
    with pytest.raises(BadInput) as exc:
        parse_yaml(text, source)
    assert str(exc.value).startswith(source), exc.value
    return str(exc.value)


# --------------------------------------------------------------------------- files that are not YAML text

@pytest.mark.parametrize("content, needle", [
    (b"\x7fELF\x02\x01\x01\x00\x00\x00", "is a binary file, not YAML text (NUL byte at offset 7)"),
    ("kind: Deployment\nname: caf\xe9\n".encode("latin-1"), "is not UTF-8 text: byte 0xe9 at offset 26"),
    (b"\xff\xfe" + "kind: x\n".encode("utf-16-le"), "binary file"),
    (b"", "holds no YAML document"),
    (b"\n\n# nothing but a comment\n", "holds no YAML document"),
])
def test_files_that_are_not_yaml_text_are_bad_input_naming_the_file(tmp_path, content, needle):
    f = tmp_path / "green.yaml"
    f.write_bytes(content)
    with pytest.raises(BadInput) as exc:
        load_yaml_documents(f)
    assert str(exc.value).startswith(str(f)) and needle in str(exc.value)


def test_a_directory_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match=f"cannot read {tmp_path}: it is a directory, not a file"):
        load_yaml_documents(tmp_path)


def test_a_missing_or_unreadable_file_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="cannot read .*nope.yaml: No such file or directory"):
        load_yaml_documents(tmp_path / "nope.yaml")
    if os.geteuid() != 0:  # root reads anything
        f = tmp_path / "secret.yaml"
        f.write_text("a: 1\n")
        f.chmod(0)
        with pytest.raises(BadInput, match="Permission denied"):
            load_yaml_documents(f)


def test_a_file_over_the_size_bound_is_refused_without_reading_it_all(tmp_path):
    f = tmp_path / "huge.yaml"
    f.write_bytes(b"# " + b"x" * MAX_FILE_BYTES)
    with pytest.raises(BadInput, match=r"huge.yaml is larger than 3,145,728 bytes"):
        load_yaml_documents(f)


def test_an_endless_device_is_refused_at_the_size_bound():
    start = time.perf_counter()
    with pytest.raises(BadInput, match="/dev/zero is larger than"):
        read_text("/dev/zero")
    assert time.perf_counter() - start < HANG_GUARD_S


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    f = tmp_path / "bom.yaml"
    f.write_bytes("\ufeffkind: Deployment\n".encode())
    assert load_yaml_documents(f) == [{"kind": "Deployment"}]


# --------------------------------------------------------------------------- alias bombs, nesting, duplicates

def test_billion_laughs_is_refused_in_well_under_a_second_naming_the_bound():
    text = billion_laughs()
    assert len(text) < 1024  # a kilobyte that would expand to 9**9 = 387,420,489 strings
    start = time.perf_counter()
    message = refused(text)
    assert time.perf_counter() - start < HANG_GUARD_S
    assert f"more than {MAX_NODES:,} nodes in all after alias expansion" in message and "line " in message


@pytest.mark.parametrize("levels, width", [(12, 10), (30, 2), (4, 400)])
def test_other_alias_bombs_are_refused_quickly(levels, width):
    start = time.perf_counter()
    message = refused(billion_laughs(levels, width))
    assert time.perf_counter() - start < HANG_GUARD_S
    assert "nodes" in message or "alias uses" in message or "levels" in message


def test_alias_uses_beyond_the_bound_are_refused():
    text = "x: &x 1\nl:\n" + "- *x\n" * (MAX_ALIASES + 1)
    assert f"more than {MAX_ALIASES} alias uses" in refused(text)
    assert len(parse_yaml("x: &x 1\nl:\n" + "- *x\n" * MAX_ALIASES)[0]["l"]) == MAX_ALIASES


def test_aliases_expand_into_copies_not_shared_objects():
    (doc,) = parse_yaml("base: &env [{name: A, value: '1'}]\none: *env\ntwo: *env\n")
    assert doc["one"] == doc["two"] == doc["base"]
    doc["one"][0]["value"] = "changed"
    assert doc["two"][0]["value"] == "1" and doc["base"][0]["value"] == "1"


@pytest.mark.parametrize("text", [
    "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
    "".join("  " * i + "a:\n" for i in range(MAX_DEPTH + 1)) + "  " * (MAX_DEPTH + 1) + "x\n",
    "d: &d " + "[" * 60 + "]" * 60 + "\nx: " + "[" * 50 + "*d" + "]" * 50 + "\n",  # deep through an alias
    "[" * 200_000 + "]" * 200_000,
])
def test_nesting_deeper_than_the_bound_is_refused(text):
    message = refused(text)
    assert f"deeper than {MAX_DEPTH} levels" in message or "maximum nesting depth" in message


def test_nesting_up_to_the_bound_loads():
    (doc,) = parse_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    depth = 0
    while isinstance(doc, list):
        depth, doc = depth + 1, doc[0] if doc else None
    assert depth == MAX_DEPTH


@pytest.mark.parametrize("text, needle", [
    ("metadata:\n  name: green-dep\n  labels: {}\n  name: other\n", "line 4: duplicate key 'name' (first at line 2)"),
    ("a: 1\nb: 2\na: 3\n", "line 3: duplicate key 'a' (first at line 1)"),
    ("{x: 1, x: 1}\n", "duplicate key 'x'"),
    ("1: a\n'1': b\n", "duplicate key '1'"),  # Kubernetes makes both the key "1"
])
def test_duplicate_keys_are_refused_naming_key_and_lines(text, needle):
    assert needle in refused(text)


def test_merge_keys_may_be_overridden_that_is_what_they_are_for():
    (doc,) = parse_yaml("b: &b {x: 1, y: 1}\nc:\n  <<: *b\n  x: 2\nd: {<<: [{z: 1}, {z: 2, w: 2}]}\n")
    assert doc["c"] == {"x": 2, "y": 1} and doc["d"] == {"z": 1, "w": 2}


def test_node_count_beyond_the_bound_is_refused_quickly():
    start = time.perf_counter()
    assert f"more than {MAX_NODES:,} nodes" in refused("- a\n" * (MAX_NODES + 10))
    assert time.perf_counter() - start < HANG_GUARD_S


# --------------------------------------------------------------------------- the Kubernetes dialect

def test_values_are_read_as_kubernetes_reads_them():
    """YAML 1.1 types as sigs.k8s.io/yaml reads them: no timestamps, no base-60 numbers, keys become strings."""
    (doc,) = parse_yaml("date: 2024-05-01\nports: 8080:80\ntime: 1:20\nflag: yes\nmode: 0644\nn: ~\nf: 1.5\n"
                        "1: one\ntrue: t\n~: nothing\n2.5: x\n")
    assert doc == {"date": "2024-05-01", "ports": "8080:80", "time": "1:20", "flag": True, "mode": 420, "n": None,
                   "f": 1.5, "1": "one", "true": "t", "null": "nothing", "2.5": "x"}


@pytest.mark.parametrize("text, needle", [
    ("x: .inf\n", "is not a finite number"), ("x: -.Inf\n", "is not a finite number"), ("x: .nan\n", "finite"),
    ("x: !!binary aGVsbG8=\n", "tag !!binary is not supported"), ("x: !!set {a}\n", "tag !!set is not supported"),
    ("x: !custom 1\n", "tag !custom is not supported"), ("x: !!timestamp 2024-01-01\n", "tag !!timestamp"),
    ("x: !!python/object:os.system {}\n", "not supported"), ("? [a, b]\n: 1\n", "must be a scalar"),
    ("a: *undefined\n", "names no anchor"), ("a: &a [*a]\n", "names no anchor"), ("<<: 1\n", "merge takes"),
    ("---\na: &a 1\n---\nb: *a\n", "names no anchor"),  # anchors never reach into the next document
])
def test_what_kubernetes_cannot_carry_is_refused_naming_the_line(text, needle):
    message = refused(text)
    assert needle in message and "line " in message


@pytest.mark.parametrize("path", sorted((ROOT / "examples").rglob("*.yaml")), ids=lambda p: p.name)
def test_the_tutorials_manifests_load_as_pyyaml_loads_them(path):
    assert load_yaml_documents(path) == [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def test_a_large_manifest_loads_within_a_second(tmp_path):
    """A 1.1 MiB Deployment of 20,000 environment variables (~100,000 nodes, half the node bound)."""
    doc = yaml.safe_load((ROOT / "examples/tutorial1/green-dep.yaml").read_text())
    doc["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": f"VAR_{i:06d}", "value": f"value-{i}"} for i in range(20_000)]
    f = tmp_path / "big.yaml"
    f.write_text(yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper)))
    start = time.perf_counter()
    assert load_yaml_documents(f) == [doc]
    assert time.perf_counter() - start < HANG_GUARD_S


# --------------------------------------------------------------------------- peak memory, measured

_MEASURE = """
import json, resource, sys, time
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.spec import load_yaml_documents
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    load_yaml_documents(sys.argv[1])
    outcome = "loaded"
except BadInput as exc:
    outcome = str(exc)
print(json.dumps({"before_kib": before, "after_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "seconds": time.perf_counter() - start, "outcome": outcome}))
"""


@pytest.mark.parametrize("levels, width", [(9, 9), (12, 10)])
def test_alias_bomb_peak_memory_is_bounded(tmp_path, levels, width):
    """In a fresh interpreter (ru_maxrss is a process's peak): loading the bomb adds less than 32 MiB."""
    f = tmp_path / "bomb.yaml"
    f.write_text(billion_laughs(levels, width))
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(f)], capture_output=True, text=True, timeout=60,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    m = json.loads(out.stdout)
    assert "after alias expansion" in m["outcome"]
    grown_mib = (m["after_kib"] - m["before_kib"]) / 1024
    assert grown_mib < 32, m
    assert m["seconds"] < HANG_GUARD_S, m
