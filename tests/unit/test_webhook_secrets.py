"""Webhook headers from Prefect Secret blocks (tasks/prefect_adapter/secrets.py): a hook's `secret_headers` and
`headers` as the spec validates them, the request a hook sends, preflight refusing a missing block, the CLI's
`--hook-header-secret` and `greenlight webhook --header-secret`. Prefect's `Secret.load` is faked (no server);
every test also checks that the secret value is in nothing that may be printed, logged or reported."""

from __future__ import annotations

import argparse

import pytest
from prefect.blocks.system import Secret

from prefect_greenlight.cli import main as cli_main
from prefect_greenlight.cli.main import build_parser, build_spec
from prefect_greenlight.tasks.decisions.describe_hooks import HookPlan
from prefect_greenlight.tasks.decisions.hooks import HookRecord
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.hooks.preflight import check_hook_jobs, hook_secret_problems
from prefect_greenlight.tasks.hooks.webhook import call_webhook, request_headers
from prefect_greenlight.tasks.prefect_adapter.automations import notification_headers
from prefect_greenlight.tasks.prefect_adapter.secrets import load_secret, secret_headers, value_problem
from prefect_greenlight.tasks.spec import BlueGreenSpec, Hook, HookPoint, WebhookHook, parse_spec
from tests.e2e.hook_receiver import Receiver  # a local HTTP receiver recording each request's headers

TOKEN = "Bearer gl-7f3a9c1e5b2d4f60a8e1"
MISSING = ValueError("Unable to find block document named {} for block type secret")


@pytest.fixture
def stored(monkeypatch) -> dict[str, object]:
    """Secret blocks by name, as Secret.load finds them: a value, or an exception it raises."""
    blocks: dict[str, object] = {}

    def load(name, **kwargs):
        value = blocks.get(name, MISSING)
        if isinstance(value, Exception):
            raise ValueError(str(value).format(name))
        return Secret(value=value)

    monkeypatch.setattr(Secret, "load", load)
    return blocks


def gate_hook(**webhook) -> Hook:
    return Hook.model_validate({"name": "gate", "at": "pre-switch", "webhook": {"url": "http://a/gate", **webhook}})


def spec_with(webhook: dict) -> dict:
    return {"service": "svc", "image": "app:2", "hooks": [{"name": "g", "at": "pre-switch", "webhook": webhook}]}


# -- the spec -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("webhook, needle", [
    ({"secret_headers": {"X Token": "t"}}, "secret_headers.X Token.[key]: Value error, header name 'X Token': an "
                                           "HTTP header name is letters, digits"),
    ({"secret_headers": {"Authorization:": "t"}}, "header name 'Authorization:'"),
    ({"secret_headers": {"Authorization": "Gate_Token"}}, "Secret block name 'Gate_Token': a Prefect block "
                                                          "document name is lowercase letters, digits and dashes"),
    ({"secret_headers": {"Authorization": "secret/gate"}}, "Secret block name 'secret/gate'"),
    ({"secret_headers": {"Authorization": ""}}, "at least 1 character"),
    ({"secret_headers": {"Idempotency-Key": "t"}}, "header 'Idempotency-Key' is set by greenlight or the HTTP "
                                                   "client"),
    ({"headers": {"content-type": "text/plain"}}, "header 'content-type' is set by greenlight"),
    ({"headers": {"X-Team": "a\r\nInjected: 1"}}, "headers.X-Team: Value error, a header value is visible ASCII"),
    ({"headers": {"X-Team": " padded"}}, "no leading or trailing space"),
    ({"headers": {"authorization": "x"}, "secret_headers": {"Authorization": "t"}},
     "webhook: Value error, headers authorization given more than once (names are case-insensitive"),
    ({"secret_headers": {f"X-{i}": "t" for i in range(33)}}, "at most 32 items"),
])
def test_bad_headers_are_refused_naming_the_field(webhook, needle):
    with pytest.raises(BadInput) as err:
        parse_spec(BlueGreenSpec, spec_with({"url": "http://a", **webhook}))
    assert needle in str(err.value) and "spec: hooks.0.webhook" in str(err.value), str(err.value)


def test_the_spec_holds_block_names_and_shows_them_in_the_plan():
    spec = parse_spec(BlueGreenSpec, spec_with({"url": "http://a/gate", "headers": {"X-Team": "payments"},
                                                "secret_headers": {"Authorization": "gate-token"}}))
    w = spec.hooks[0].webhook
    assert (w.headers, w.secret_headers) == ({"X-Team": "payments"}, {"Authorization": "gate-token"})
    assert spec.model_dump(mode="json")["hooks"][0]["webhook"]["secret_headers"] == {"Authorization": "gate-token"}
    assert w.header_summary() == "X-Team, Authorization (Prefect Secret block gate-token)"
    [step] = HookPlan(tuple(spec.hooks), HookRecord("fp", "r1")).steps(HookPoint.PRE_SWITCH)
    assert "with the headers X-Team, Authorization (Prefect Secret block gate-token)" in step.change
    assert parse_spec(BlueGreenSpec, spec_with({"url": "http://a"})).hooks[0].webhook.secret_headers == {}


# -- loading a Secret ---------------------------------------------------------------------------------------
def test_a_secret_is_loaded_as_stored_and_never_printed(stored):
    stored["gate-token"], stored["numeric"] = TOKEN, "12345"
    assert load_secret("gate-token") == TOKEN
    assert load_secret("numeric") == "12345", "Secret.get() would make a number of it"
    loaded = secret_headers({"Authorization": "gate-token"})
    assert loaded.values == {"Authorization": TOKEN}
    assert repr(loaded) == str(loaded) == f"{loaded}" == "SecretHeaders(Authorization from secret/gate-token)"
    assert TOKEN not in repr([loaded]) and TOKEN not in repr({"headers": loaded})


def test_a_missing_block_is_bad_input_naming_it(stored):
    with pytest.raises(BadInput) as err:
        load_secret("gate-token")
    assert str(err.value).startswith("no Prefect block secret/gate-token (create one with Secret(value=...)"
                                     ".save('gate-token')"), str(err.value)
    assert not err.value.retryable


def test_a_block_that_does_not_load_is_refused_without_quoting_its_data(stored):
    stored["gate-token"] = ValueError(f"1 validation error for Secret ... input_value='{TOKEN}'")
    with pytest.raises(BadInput) as err:
        load_secret("gate-token")
    assert TOKEN not in str(err.value) and "cannot be read as a Secret (ValueError)" in str(err.value)


@pytest.mark.parametrize("value, needle", [
    ({"token": TOKEN}, "holds a dict, not a string"),
    (12345, "holds a int, not a string"),
    (TOKEN + "\r\nX-Injected: 1", "cannot be an HTTP header value"),
    (TOKEN + " ", "cannot be an HTTP header value"),
    ("", "cannot be an HTTP header value"),
])
def test_a_value_that_cannot_be_a_header_is_refused_without_quoting_it(value, needle):
    problem = value_problem("gate-token", value)
    assert problem and needle in problem and "secret/gate-token" in problem and TOKEN not in problem


def test_every_bad_block_is_named_with_its_header(stored):
    stored["ok"], stored["json"] = TOKEN, {"a": TOKEN}
    with pytest.raises(BadInput) as err:
        secret_headers({"Authorization": "ok", "X-Key": "json", "X-Other": "gone"})
    assert err.value.problems == [
        "header X-Key: Prefect block secret/json holds a dict, not a string: a header value is text (store e.g. "
        "'Bearer <token>')",
        "header X-Other: no Prefect block secret/gone (create one with Secret(value=...).save('gone') or in the UI, "
        "Blocks; list them with `prefect block ls`)"]
    assert TOKEN not in str(err.value)


# -- the request --------------------------------------------------------------------------------------------
def test_the_request_carries_greenlights_plain_and_secret_headers():
    hook = WebhookHook(url="http://a", headers={"X-Team": "payments"}, secret_headers={"Authorization": "t"})
    assert request_headers(hook, "r1/k", {"t": TOKEN}.__getitem__) == {
        "Idempotency-Key": "r1/k", "User-Agent": "greenlight-hook", "X-Team": "payments", "Authorization": TOKEN}
    for text in (repr(hook), str(hook), hook.model_dump_json(), hook.header_summary()):
        assert TOKEN not in text


@pytest.mark.parametrize("status, ok", [(200, True), (403, False)])
def test_a_hook_sends_the_secret_header_and_reports_without_it(stored, status, ok):
    stored["gate-token"] = TOKEN
    with Receiver(lambda call: status) as gate:
        got, detail = call_webhook(WebhookHook(url=gate.url(), timeout_s=2, secret_headers={
            "Authorization": "gate-token"}), {"phase": "pre-switch"}, "r1/k")
    assert got is ok and [c.headers["Authorization"] for c in gate.calls] == [TOKEN]
    assert gate.calls[0].key == "r1/k" and gate.calls[0].body == {"phase": "pre-switch"}
    assert detail.startswith("HTTP 200 (" if ok else "HTTP 403: no: the gate says stop (") and TOKEN not in detail


def test_a_missing_block_at_call_time_fails_the_hook_uncalled_naming_the_block(stored):
    with Receiver() as gate:
        ok, detail = call_webhook(WebhookHook(url=gate.url(), secret_headers={"Authorization": "gate-token"}),
                                  {}, "r1/k")
    assert not ok and gate.calls == []
    assert detail.startswith("not called: header Authorization: no Prefect block secret/gate-token"), detail


def test_an_unreachable_prefect_api_fails_the_hook_with_the_error_type_only():
    def unreachable(name):
        raise ConnectionError(f"cannot reach the API while loading {TOKEN}")

    ok, detail = call_webhook(WebhookHook(url="http://127.0.0.1:9/x", secret_headers={"Authorization": "t"}), {}, "k",
                              unreachable)
    assert (ok, detail) == (False, "not called: the Secret blocks could not be loaded (ConnectionError)")


def test_a_refused_connection_is_described_without_the_header():
    ok, detail = call_webhook(WebhookHook(url="http://127.0.0.1:9/x", timeout_s=1,
                                          secret_headers={"Authorization": "t"}), {}, "k", {"t": TOKEN}.__getitem__)
    assert not ok and detail.startswith("ConnectionError") and TOKEN not in detail


# -- preflight ----------------------------------------------------------------------------------------------
def test_preflight_refuses_a_missing_block_before_anything_changes(stored):
    stored["gate-token"] = TOKEN
    hooks = [gate_hook(secret_headers={"Authorization": "gate-token"}),
             Hook.model_validate({"name": "notify", "at": "on-rollback", "webhook": {
                 "url": "http://b", "secret_headers": {"X-Key": "notify-key"}}})]
    assert hook_secret_problems(hooks[:1]) == []
    with pytest.raises(BadInput) as err:
        check_hook_jobs(None, hooks, None, {"metadata": {}})  # no Job hook: the apiserver is not asked
    assert err.value.problems == ["hooks: notify: header X-Key: no Prefect block secret/notify-key (create one with "
                                  "Secret(value=...).save('notify-key') or in the UI, Blocks; list them with "
                                  "`prefect block ls`)"]
    check_hook_jobs(None, hooks[:1], None, {"metadata": {}})


# -- the CLI ------------------------------------------------------------------------------------------------
def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["blue-green", "--service", "production-svc", "-n", "ns", "--image", "app:2",
                                      *argv])


def test_hook_header_secret_flags_name_the_blocks_of_every_flag_given_webhook():
    spec = build_spec(_args("--hook-webhook", "pre-switch=http://a", "--hook-webhook", "post-switch=http://b",
                            "--hook-header-secret", "Authorization=gate-token", "--hook-header-secret", "X-Key=k"))
    assert [h.webhook.secret_headers for h in spec.hooks] == [{"Authorization": "gate-token", "X-Key": "k"}] * 2


@pytest.mark.parametrize("argv, needle", [
    (("--hook-header-secret", "Authorization=gate-token"), "--hook-header-secret is for the --hook-webhook gates"),
    (("--hook-webhook", "pre-switch=http://a", "--hook-header-secret", "Authorization"),
     "--hook-header-secret takes HEADER=BLOCK"),
    (("--hook-webhook", "pre-switch=http://a", "--hook-header-secret", "A=x", "--hook-header-secret", "a=y"),
     "header 'a' given more than once"),
    (("--hook-webhook", "pre-switch=http://a", "--hook-header-secret", "Authorization=Gate"),
     "Secret block name 'Gate'"),
])
def test_bad_hook_header_secret_flags_are_bad_input(argv, needle):
    with pytest.raises(BadInput, match=needle):
        build_spec(_args(*argv))


def test_notification_headers_copy_the_secret_values_and_name_bad_blocks():
    assert notification_headers({"Authorization": "chat"}, {"chat": TOKEN}.__getitem__) == {
        "Content-Type": "application/json", "Authorization": TOKEN}
    with pytest.raises(BadInput, match=r"--header-secret: header name 'A B'.*Secret block name 'Chat'"):
        notification_headers({"A B": "Chat"})


def test_greenlight_webhook_with_a_missing_block_exits_2_creating_nothing(stored, monkeypatch, capsys):
    from prefect.blocks.webhook import Webhook

    saved = []
    monkeypatch.setattr(Webhook, "save", lambda self, *a, **k: saved.append(a))
    code = cli_main.main(["webhook", "--url", "http://127.0.0.1:1/hook", "--header-secret", "Authorization=chat"])
    err = capsys.readouterr().err
    assert code == cli_main.EXIT_BAD_INPUT and saved == []
    assert err == ("error: --header-secret header Authorization: no Prefect block secret/chat (create one with "
                   "Secret(value=...).save('chat') or in the UI, Blocks; list them with `prefect block ls`)\n")


def test_greenlight_webhook_passes_the_header_secrets_and_prints_their_blocks(monkeypatch, capsys):
    from prefect_greenlight.tasks.prefect_adapter import automations

    calls = []

    def install(url, kinds, name, header_secrets):
        calls.append(header_secrets)
        return {"automation_id": "a1", "block_document_id": "b1", "name": name, "events": ["greenlight.release.failed"],
                "header_secrets": header_secrets}

    monkeypatch.setattr(automations, "install_webhook", install)
    assert cli_main.main(["webhook", "--url", "http://h/x", "--on", "failed", "--header-secret",
                          "Authorization=chat"]) == cli_main.EXIT_OK
    assert calls == [{"Authorization": "chat"}]
    assert capsys.readouterr().out == ("automation greenlight-webhook (a1): POST http://h/x on greenlight.release.failed"
                                       "; Authorization from Prefect Secret block chat\n")
