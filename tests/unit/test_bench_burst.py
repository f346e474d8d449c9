"""The burst bench's arithmetic and configurations (bench/burst.py), and the worker-count bookkeeping of P5w
(bench/concurrent.py): what BENCHMARKS.md quotes must count what it says."""

from __future__ import annotations

import pytest

from bench.burst import CONFIGS, client_environment, inherited_settings, tally
from bench.concurrent import runs_per_worker, worker_key, worker_limit
from prefect_greenlight.tasks.prefect_adapter.starting import CLIENT_RETRY_DEFAULTS


def call(created: bool, *statuses: int, latency: float = 1.0) -> dict:
    return {"created": created, "statuses": list(statuses), "latency_s": latency,
            **({} if created else {"error": "PrefectHTTPStatusError: 503"})}


def test_tally_tells_first_attempt_refusals_from_refusals_in_the_end():
    calls = [call(True, 201), call(True, 503, 503, 201), call(True, 429, 201), call(False, 503, 503, 503),
             call(True, 201, latency=3.0)]
    figures = tally(calls, wall_s=12.3456)
    assert figures["created"] == 4
    assert figures["refused_in_the_end"] == 1
    assert figures["first_attempt_refused"] == 3  # 503, 429 and the one never created
    assert figures["responses_503"] == 5
    assert figures["responses_429"] == 1
    assert figures["attempts"] == 10
    assert figures["max_attempts_one_call"] == 3
    assert figures["wall_s"] == 12.346
    assert figures["per_call_latency_s"]["max"] == 3.0
    assert figures["errors"] == ["PrefectHTTPStatusError: 503"]


def test_tally_of_a_call_that_never_got_an_answer():
    # a connection error: no response recorded, not created, not a first-attempt 503
    figures = tally([call(False)], wall_s=1)
    assert (figures["created"], figures["refused_in_the_end"], figures["first_attempt_refused"]) == (0, 1, 0)


def test_defaults_are_prefects_not_the_callers_shell():
    base = {"PATH": "/bin", "PREFECT_CLIENT_MAX_RETRIES": "9", "PREFECT_CLIENT_RETRY_JITTER_FACTOR": "0.9",
            "PREFECT_CLIENT_RETRY_EXTRA_CODES": "500"}
    assert client_environment(CONFIGS["prefect-defaults"], base) == {"PATH": "/bin"}
    assert client_environment(CONFIGS["greenlight"], base) == {"PATH": "/bin", **CLIENT_RETRY_DEFAULTS}


def test_a_server_setting_in_the_bench_environment_is_reported():
    assert inherited_settings({"PREFECT_SERVER_DATABASE_TIMEOUT": "5", "PATH": "/bin"}) == [
        "PREFECT_SERVER_DATABASE_TIMEOUT"]
    assert inherited_settings({"PATH": "/bin"}) == []


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_setting_a_configuration_sets_changes_prefects_settings(name, monkeypatch):
    """Prefect ignores an environment variable it does not know: a misspelt setting would measure nothing."""
    from prefect.settings import Settings

    config = CONFIGS[name]
    for key, value in {**config["server"], **config["client"]}.items():
        monkeypatch.delenv(key, raising=False)
        before = Settings().model_dump()
        monkeypatch.setenv(key, value)
        assert Settings().model_dump() != before, f"{key}={value} changes none of Prefect's settings"
        monkeypatch.delenv(key)


@pytest.mark.parametrize(("releases", "count", "limit"), [(50, 1, 50), (50, 3, 17), (12, 3, 4), (2, 3, 1)])
def test_workers_share_the_capacity_of_one(releases, count, limit):
    assert worker_limit(releases, count) == limit
    assert worker_limit(releases, count) * count >= releases


def test_worker_keys_keep_the_single_worker_results_name():
    assert worker_key(1) == "worker"
    assert worker_key(3) == "worker-3w"


def test_runs_are_counted_per_worker_process_from_their_infrastructure_ids():
    pids = ["greenlight:host:101:aaa:7", "greenlight:host:102:bbb:1", "greenlight:host:101:aaa:8",
            None, "greenlight:other:999:ccc:1", "process:1234"]
    assert runs_per_worker(pids, [101, 102, 103]) == [2, 1, 0]
