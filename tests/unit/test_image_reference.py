"""The image reference grammar (tasks/spec/image_ref.py) against the cases of upstream distribution/reference's own
tests (reference_test.go TestReferenceParse, regexp_test.go TestDomainRegexp / TestFullNameRegexp /
TestReferenceRegexp), written here as (reference, valid) pairs; domains tested there alone appear as
"<domain>/repo". Then what upstream leaves to go-digest (one length per algorithm) and ASCII. Every case is also
checked against the spec's JSON schema, which the Prefect server and UI use: both must draw the same line.
"""

from __future__ import annotations

import jsonschema
import pytest

from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.spec import BlueGreenSpec, parse_spec, valid_image
from prefect_greenlight.tasks.spec.image_ref import MAX_LENGTH, PATTERN

F64, F128 = "f" * 64, "f" * 128
SHA = "sha256:be178c0543eb17f5f3043021c9e5fcf30285e557a4fc309cce97ff9ca6182912"

UPSTREAM_PARSE = [
    ("test_com", True), ("test.com:tag", True), ("test.com:5000", True), ("test.com/repo:tag", True),
    ("test:5000/repo", True), ("test:5000/repo:tag", True), (f"test:5000/repo@sha256:{F64}", True),
    (f"test:5000/repo:tag@sha256:{F64}", True), ("", False), (":justtag", False), (f"@sha256:{F64}", False),
    ("repo@sha256:" + "f" * 34, False),  # ErrDigestInvalidLength
    (f"validname@invaliddigest:{F64}", False),  # ErrDigestUnsupported
    ("Uppercase:tag", False), ("test:5000/Uppercase/lowercase:tag", False), ("lowercase:Uppercase", True),
    ("Uppercase/lowercase:tag", True),  # upstream's FIXME: "Uppercase" is taken as a registry host
    ("a/" * 128 + "a:tag", False),  # ErrNameTooLong: the name is 257 characters
    ("a/" * 127 + "a:tag-puts-this-over-max", True),  # a 255-character name; the tag does not count
    ("aa/asdf$$^/aa", False), ("sub-dom1.foo.com/bar/baz/quux", True),
    ("sub-dom1.foo.com/bar/baz/quux:some-long-tag", True),
    ("b.gcr.io/test.example.com/my-app:test.example.com", True), ("xn--n3h.com/myimage:xn--n3h.com", True),
    (f"xn--7o8h.com/myimage:xn--7o8h.com@sha512:{F128}", True), ("foo_bar.com:8080", True),
    ("foo/foo_bar.com:8080", True), ("192.168.1.1", True), ("192.168.1.1:tag", True), ("192.168.1.1:5000", True),
    ("192.168.1.1/repo", True), ("192.168.1.1:5000/repo", True), ("192.168.1.1:5000/repo:5050", True),
    ("[2001:db8::1]", False), ("[2001:db8::1]:5000", False), ("[2001:db8::1]:tag", False),
    ("[2001:db8::1]/repo", True), ("[2001:db8:1:2:3:4:5:6]/repo:tag", True), ("[2001:db8::1]:5000/repo", True),
    ("[2001:db8::1]:5000/repo:tag", True), (f"[2001:db8::1]:5000/repo@sha256:{F64}", True),
    (f"[2001:db8::1]:5000/repo:tag@sha256:{F64}", True), ("[2001:db8::]:5000/repo", True),
    ("[::1]:5000/repo", True), ("[fe80::1%eth0]:5000/repo", False), ("[fe80::1%@invalidzone]:5000/repo", False),
]
UPSTREAM_DOMAINS = [
    ("test.com", True), ("test.com:10304", True), ("test.com:http", False), ("localhost", True),
    ("localhost:8080", True), ("a", True), ("a.b", True), ("ab.cd.com", True), ("a-b.com", True),
    ("-ab.com", False), ("ab-.com", False), ("ab.c-om", True), ("ab.-com", False), ("ab.com-", False),
    ("0101.com", True), ("001a.com", True), ("b.gbc.io:443", True), ("b.gbc.io", True), ("xn--n3h.com", True),
    ("Asdf.com", True), ("192.168.1.1:75050", True), ("192.168.1.1:750050", True), ("[fd00:1:2::3]:75050", True),
    ("[fd00:1:2::3]75050", False), ("[fd00:1:2::3]::75050", False), ("[fd00:1:2::3%eth0]:75050", False),
    ("[fd00123123123]:75050", True), ("[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:75050", True),
    ("[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:750505", True), ("fd00:1:2::3:75050", False),
]
UPSTREAM_NAMES = [
    ("short", True), ("simple/name", True), ("library/ubuntu", True), ("docker/stevvooe/app", True),
    ("aa/aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb", True), ("aa/aa/bb/bb/bb", True), ("a/a/a/a", True),
    ("a/a/a/a/", False), ("a//a/a", False), ("a", True), ("a/aa", True), ("a/aa/a", True), ("foo.com", True),
    ("foo.com/", False), ("foo.com:8080/bar", True), ("foo.com:http/bar", False), ("foo.com/bar", True),
    ("foo.com/bar/baz", True), ("localhost:8080/bar", True), ("blog.foo.com/bar/baz", True), ("a^a", False),
    ("asdf$$^/aa", False), ("aa-a/a", True), ("a/" * 127 + "a", True), ("a-/a/a/a", False),
    ("foo.com/a-/a/a", False), ("-foo/bar", False), ("foo/bar-", False), ("foo-/bar", False), ("foo/-bar", False),
    ("_foo/bar", False), ("foo_bar", True), ("foo_bar.com", True), ("foo_bar.com:8080/app", False),
    ("foo.com/foo_bar", True), ("____/____", False), ("_docker/_docker", False), ("docker_/docker_", False),
    ("xn--7o8h.com/myimage", True), ("example.com/xn--7o8h.com/myimage", True),
    ("example.com/some_separator__underscore/myimage", True), ("example.com/__underscore/myimage", False),
    ("example.com/..dots/myimage", False), ("example.com/.dots/myimage", False),
    ("example.com/nodouble..dots/myimage", False), ("docker./docker", False), (".docker/docker", False),
    ("docker-/docker", False), ("-docker/docker", False), ("do..cker/docker", False),
    ("do__cker:8080/docker", False), ("do__cker/docker", True),
    ("registry.io/foo/project--id.module--name.ver---sion--name", True), ("Asdf.com/foo/bar", True),
    ("Foo/FarB", False),
]
UPSTREAM_REFERENCES = [
    ("registry.com:8080/myapp:tag", True), (f"registry.com:8080/myapp@{SHA}", True),
    (f"registry.com:8080/myapp:tag2@{SHA}", True), ("registry.com:8080/myapp@sha256:badbadbadbad", False),
    ("registry.com:8080/myapp:invalid~tag", False), ("bad_hostname.com:8080/myapp:tag", False),
    (f"localhost:8080@{SHA}", True), (f"localhost:8080/name@{SHA}", True), (f"localhost:http/name@{SHA}", False),
    (f"localhost@{SHA}", True), ("registry.com:8080/myapp@bad", False), ("registry.com:8080/myapp@2bad", False),
]
# go-digest's rule (applied by upstream's Parse after the grammar) and ASCII.
DIGESTS_AND_ASCII = [
    ("app@sha256:" + "a" * 64, True), ("app@sha256:" + "a" * 63, False), ("app@sha256:" + "a" * 65, False),
    ("app@sha256:" + "A" * 64, False), ("app@sha384:" + "a" * 96, True), ("app@sha384:" + "a" * 64, False),
    ("app@sha512:" + "a" * 128, True), ("app@sha512:" + "a" * 64, False), ("app@sha512:" + "a" * 127, False),
    ("app@md5:" + "a" * 32, False), ("app@blake3:" + "a" * 64, False),
    ("nginx:tägé", False), ("ngïnx", False), ("nginx:１", False), ("ｎginx", False), ("nginx:1.2\u200b", False),
    ("exämple.com/app", False), ("nginx:1.27\n", False), (" nginx", False),
    ("a" * 255, True), ("a" * 256, False), ("r.io/" + "a" * 250, True), ("r.io/" + "a" * 251, False),
    ("a:" + "t" * 128, True), ("a:" + "t" * 129, False),
    ("a" * 255 + ":" + "t" * 128 + "@sha512:" + F128, True),
]
CASES = UPSTREAM_PARSE + [(f"{d}/repo", ok) for d, ok in UPSTREAM_DOMAINS] + UPSTREAM_NAMES + \
    UPSTREAM_REFERENCES + DIGESTS_AND_ASCII
SCHEMA = BlueGreenSpec.model_json_schema()


@pytest.mark.parametrize("ref, ok", CASES, ids=[c[0][:60] or "<empty>" for c in CASES])
def test_reference_grammar_as_upstream_decides(ref, ok):
    assert valid_image(ref) is ok


@pytest.mark.parametrize("ref, ok", CASES, ids=[c[0][:60] or "<empty>" for c in CASES])
def test_json_schema_draws_the_same_line(ref, ok):
    errors = list(jsonschema.Draft202012Validator(SCHEMA).iter_errors({"service": "web", "image": ref}))
    assert (not errors) is ok, errors[:1]


def test_schema_carries_the_python_pattern_and_length():
    image = SCHEMA["properties"]["image"]["anyOf"][0]
    assert (image["pattern"], image["maxLength"]) == (PATTERN, MAX_LENGTH)


def test_bad_image_is_bad_input_naming_the_field_without_echoing_a_huge_value():
    with pytest.raises(BadInput) as exc:
        parse_spec(BlueGreenSpec, {"service": "web", "image": "x" * 100_000 + "!"})
    (problem,) = exc.value.problems
    assert problem.startswith("spec: image: ") and "not a valid image reference" in problem and len(problem) < 300


@pytest.mark.parametrize("ref", ["a" * 255 + "!", "a-" * 127 + "!", "a." * 127 + "!", "[" + ":" * 250 + "]/!",
                                 "A-" * 126 + "A/!", "a/" * 127 + "!", "a.a-" * 60 + "/" + "a-a." * 60 + ":"])
def test_pathological_references_are_decided_in_well_under_a_millisecond(ref):
    import time

    start = time.perf_counter()
    assert not valid_image(ref)
    assert time.perf_counter() - start < 0.05  # generous for a shared machine; measured ~0.05 ms
