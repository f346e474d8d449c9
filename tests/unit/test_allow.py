"""Who may release: the image-pushed trigger's allow-list of namespace/Service patterns, from the Prefect Variable
the trigger names (read at run time) or a literal deploy-time `allowed_services`."""

from __future__ import annotations

import shlex

import pytest

from prefect_greenlight.tasks.decisions.allow import (
    DEFAULT_VARIABLE,
    AllowList,
    AllowSource,
    check_allowed,
    parse_patterns,
    resolve_allow_list,
    variable_to_read,
)

VAR = DEFAULT_VARIABLE


@pytest.mark.parametrize(("value", "patterns"), [
    (None, ()),                                                 # the Variable is unset: nothing
    ("", ()),
    ("default/production-svc", ("default/production-svc",)),
    (" default/web , staging/* ,", ("default/web", "staging/*")),
    (["default/web", " staging/* ", ""], ("default/web", "staging/*")),  # a JSON list (the UI's editor)
    ('["default/web", "staging/*"]', ("default/web", "staging/*")),     # a string holding a JSON list
    ([], ()),
])
def test_parse_patterns_accepts_a_comma_separated_string_or_a_json_list(value, patterns):
    assert parse_patterns(value) == patterns


@pytest.mark.parametrize(("value", "said"), [
    (42, "42, not a comma-separated string or a JSON list"),
    ({"default": "web"}, '{"default": "web"}, not'),
    (["default/web", 3], '["default/web", 3], not'),
    (True, "true, not"),
    ('["default/web"', "not a valid JSON list"),
])
def test_parse_patterns_says_what_it_could_not_understand(value, said):
    with pytest.raises(ValueError) as err:
        parse_patterns(value)
    assert said in str(err.value)


@pytest.mark.parametrize(("allowed_services", "variable", "reads"), [
    (None, None, None),                        # started by hand
    (None, VAR, VAR),                          # the trigger: read the Variable
    ("", VAR, None),                           # a literal deploy-time list (even empty) wins: no read
    ("default/web", VAR, None),
    ("{{ $GREENLIGHT_TRIGGER_ALLOW }}", VAR, VAR),  # an unrendered placeholder is no list: the Variable decides
    ("{{ $GREENLIGHT_TRIGGER_ALLOW }}", None, None),
    (None, "", None),
])
def test_which_variable_a_run_reads(allowed_services, variable, reads):
    assert variable_to_read(allowed_services, variable) == reads


@pytest.mark.parametrize(("allowed_services", "variable", "value", "expected"), [
    (None, None, None, AllowList(AllowSource.NONE)),
    (None, VAR, None, AllowList(AllowSource.VARIABLE, (), VAR)),                       # unset: nothing allowed
    (None, VAR, "a/b,c/*", AllowList(AllowSource.VARIABLE, ("a/b", "c/*"), VAR)),
    (None, VAR, ["a/b"], AllowList(AllowSource.VARIABLE, ("a/b",), VAR)),
    ("x/y", VAR, "a/b", AllowList(AllowSource.DEPLOYMENT, ("x/y",), VAR)),               # the literal wins
    ("", VAR, "a/b", AllowList(AllowSource.DEPLOYMENT, (), VAR)),
    ("{{ $GREENLIGHT_TRIGGER_ALLOW }}", VAR, "a/b", AllowList(AllowSource.VARIABLE, ("a/b",), VAR)),
    ("{{ $GREENLIGHT_TRIGGER_ALLOW }}", None, None, AllowList(AllowSource.DEPLOYMENT, ())),  # fail closed
])
def test_resolve_allow_list(allowed_services, variable, value, expected):
    assert resolve_allow_list(allowed_services, variable, value) == expected


def test_a_variable_value_not_understood_allows_nothing_and_says_why():
    allow = resolve_allow_list(None, VAR, 42)
    assert allow.patterns == () and allow.problem.startswith("42, not")
    verdict = check_allowed("default", "web", allow)
    assert not verdict.allowed
    assert f"Prefect Variable {VAR} (nothing: it holds 42, not a comma-separated string" in verdict.reason


@pytest.mark.parametrize(("namespace", "service", "patterns", "allowed"), [
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
@pytest.mark.parametrize("source", [AllowSource.VARIABLE, AllowSource.DEPLOYMENT])
def test_check_allowed(namespace, service, patterns, allowed, source):
    verdict = check_allowed(namespace, service, AllowList(source, patterns, VAR))
    assert verdict.allowed is allowed
    if not allowed:
        assert f"Service {namespace}/{service} is not in " in verdict.reason
        assert verdict.reason.endswith("nothing was changed")
        assert verdict.how.startswith("To allow it, ")


def test_a_run_started_by_hand_has_no_allow_list():
    assert check_allowed("default", "anything", resolve_allow_list(None, None)).allowed


def test_an_unset_variable_refusal_says_how_to_allow_the_service():
    verdict = check_allowed("default", "web", resolve_allow_list(None, VAR, None))
    assert verdict.reason == (f"Service default/web is not in the allow-list of the Prefect Variable {VAR} "
                              "(nothing: it is unset or empty); nothing was changed")
    assert f"set the Prefect Variable {VAR} to include 'default/web'" in verdict.how
    assert "no redeploy needed. UI: Variables; CLI: " in verdict.how and verdict.how.endswith(verdict.command)
    assert verdict.command == f"prefect variable set {VAR} default/web --overwrite"


def test_the_suggested_command_keeps_what_the_variable_already_allows():
    verdict = check_allowed("default", "web", AllowList(AllowSource.VARIABLE, ("staging/*", "prod/api"), "my_list"))
    assert "(staging/*, prod/api)" in verdict.reason and "Prefect Variable my_list" in verdict.reason
    argv = shlex.split(verdict.command)
    assert argv[:4] == ["prefect", "variable", "set", "my_list"] and argv[5:] == ["--overwrite"]
    assert parse_patterns(argv[4]) == ("staging/*", "prod/api", "default/web")  # quoted for the shell


def test_a_deploy_time_refusal_names_the_list_and_points_to_prefect_yaml():
    verdict = check_allowed("default", "payments", AllowList(AllowSource.DEPLOYMENT, ("default/web", "staging/*")))
    assert "this deployment's allow-list (default/web, staging/*)" in verdict.reason
    assert "add 'default/payments' to the trigger's allowed_services in prefect.yaml" in verdict.how
    assert f"the Prefect Variable {VAR} decides" in verdict.how and verdict.command == ""
    assert "(nothing: it is empty)" in check_allowed("a", "b", AllowList(AllowSource.DEPLOYMENT)).reason


def test_a_variable_that_cannot_be_read_is_a_temporary_error_never_an_allow(monkeypatch):
    from prefect.variables import Variable

    from prefect_greenlight.tasks.errors import TemporaryError
    from prefect_greenlight.tasks.prefect_adapter.variables import read_variable

    def api_down(*args, **kwargs):
        raise ConnectionError("connection refused")

    monkeypatch.setattr(Variable, "get", api_down)
    with pytest.raises(TemporaryError, match=f"could not read the Prefect Variable '{VAR}': ConnectionError"):
        read_variable(VAR)
