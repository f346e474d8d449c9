"""Who may release: the image-pushed trigger's allow-list of namespace/Service pairs."""

from __future__ import annotations

import pytest

from prefect_greenlight.tasks.decisions.allow import check_allowed, parse_allow_list


@pytest.mark.parametrize(("text", "patterns"), [
    (None, None),                                               # started by hand: no allow-list
    ("default/production-svc", ("default/production-svc",)),
    (" default/web , staging/* ,", ("default/web", "staging/*")),
    ("", ()),
    ("{{ $GREENLIGHT_TRIGGER_ALLOW }}", ()),                    # unset at deploy time: nothing allowed
])
def test_parse_allow_list(text, patterns):
    assert parse_allow_list(text) == patterns


@pytest.mark.parametrize(("namespace", "service", "patterns", "allowed"), [
    ("default", "production-svc", None, True),
    ("default", "production-svc", ("default/production-svc",), True),
    ("staging", "anything", ("default/production-svc", "staging/*"), True),
    ("default", "payments", ("default/production-svc",), False),  # another Service of an allowed namespace
    ("prod", "production-svc", ("default/production-svc",), False),
    ("default", "production-svc", ("production-svc",), False),    # a pattern without a namespace matches nothing
    ("default", "production-svc", ("*",), False),
    ("default", "production-svc", ("*/*",), True),                # allowing everything must be said explicitly
    ("default", "Production-svc", ("default/production-svc",), False),
    ("default", "production-svc", (), False),
])
def test_check_allowed(namespace, service, patterns, allowed):
    verdict = check_allowed(namespace, service, patterns)
    assert verdict.allowed is allowed
    if not allowed:
        assert f"Service {namespace}/{service} is not in this deployment's allow-list" in verdict.reason
        assert verdict.reason.endswith("nothing was changed")


def test_the_refusal_names_the_list():
    verdict = check_allowed("default", "payments", ("default/production-svc", "staging/*"))
    assert "(default/production-svc, staging/*)" in verdict.reason
    assert "nothing (the allow-list is empty)" in check_allowed("a", "b", ()).reason
