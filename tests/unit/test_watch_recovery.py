"""The informer of prefect_greenlight.tasks.kube.watching across failures, with a scripted fake list/watch function (no apiserver, no
threads): a watch the apiserver ended resumes from the last resourceVersion without re-listing; 410 Gone and
errors re-list; failures back off and are reported; a bookmark moves the resourceVersion on."""

from __future__ import annotations

import json

import pytest
import urllib3

from prefect_greenlight.tasks.kube.watching import Cache, Watcher, health_note, watch_backoff


def pod(name: str, rv: str) -> dict:
    return {"metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": rv}}


class ListResponse:
    def __init__(self, items: list[dict], rv: str):
        self.data = json.dumps({"items": items, "metadata": {"resourceVersion": rv}}).encode()


class WatchResponse:
    def __init__(self, *events: dict):
        self.body = b"".join(json.dumps(e).encode() + b"\n" for e in events)
        self.released = False

    def stream(self, amt=None, decode_content=False):
        yield self.body[:7]  # split mid-line, as a real stream may be
        yield self.body[7:]

    def release_conn(self):
        self.released = True


class Script:
    """Stands in for e.g. CoreV1Api.list_namespaced_pod: each call takes the next scripted answer (a response,
    or an exception to raise). When the script is used up it stops the cache and answers an empty watch."""

    __name__ = "list_namespaced_pod"

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls: list[dict] = []
        self.cache: Cache | None = None

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        if not self.answers:
            self.cache.stop()
            return WatchResponse() if kwargs.get("watch") else ListResponse([], "0")
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def kinds(self) -> list[str]:
        return [("watch@" + c["resource_version"]) if c.get("watch") else "list" for c in self.calls]


def run(script: Script) -> Cache:
    cache = Cache(script, Watcher(), namespace="ns")
    script.cache = cache
    cache._run()  # in this thread: returns once the script stopped the cache
    return cache


def test_a_watch_the_apiserver_ended_resumes_without_relisting():
    script = Script(ListResponse([pod("a", "5")], "10"),
                    WatchResponse({"type": "ADDED", "object": pod("b", "11")}),
                    WatchResponse({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "20"}}}),
                    WatchResponse({"type": "DELETED", "object": pod("a", "21")}))
    cache = run(script)
    assert script.kinds()[:4] == ["list", "watch@10", "watch@11", "watch@20"]
    assert sorted(o["metadata"]["name"] for o in cache.items()) == ["b"]
    assert all(c["timeout_seconds"] == 15 and c["_request_timeout"][1] == 20 for c in script.calls[1:4]), \
        "a silent stream is given up 5 s after the apiserver should have ended it"


def test_gone_relists_at_once():
    script = Script(ListResponse([], "10"),
                    WatchResponse({"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}),
                    ListResponse([pod("a", "30")], "30"))
    cache = run(script)
    assert script.kinds()[:3] == ["list", "watch@10", "list"]
    assert [o["metadata"]["name"] for o in cache.items()] == ["a"]
    assert cache.failing_since is None


def test_failures_relist_are_reported_and_clear_once_it_answers_again():
    refused = urllib3.exceptions.NewConnectionError(None, "[Errno 111] Connection refused")
    seen: list[tuple[float | None, str]] = []

    class Probe(Script):
        def __call__(self, **kwargs):
            seen.append((self.cache.failing_since, type(self.cache.last_error).__name__))
            return super().__call__(**kwargs)

    script = Probe(ListResponse([], "10"),
                   urllib3.exceptions.ReadTimeoutError(None, "/api", "Read timed out."),  # the watch stalls
                   refused,                                                                 # apiserver restarting
                   ListResponse([pod("a", "40")], "40"))
    cache = run(script)
    assert script.kinds()[:4] == ["list", "watch@10", "list", "list"]
    assert seen[2][0] is not None and seen[2][1] == "ReadTimeoutError", "failing while the apiserver is away"
    assert seen[3][1] == "NewConnectionError"
    assert cache.failing_since is None, "healthy again"
    assert [o["metadata"]["name"] for o in cache.items()] == ["a"], "re-listed after the failures"


@pytest.mark.parametrize("failures, expected", [(1, 0.25), (2, 0.5), (3, 1.0), (4, 2.0), (10, 2.0), (0, 0.25)])
def test_watch_backoff(failures, expected):
    assert watch_backoff(failures) == expected


def test_health_note():
    assert health_note([], 100.0) == ""
    note = health_note([("pod", "ReadTimeoutError: Read timed out.", 88.0),
                        ("deployment", "no answer to the first list yet", 80.0)], 100.0)
    assert note == ("apiserver unreachable or not answering: 2 watch(es) failing: deployment for 20 s (no answer "
                    "to the first list yet); pod for 12 s (ReadTimeoutError: Read timed out.)")


def test_watcher_health_names_unsynced_and_failing_caches():
    w = Watcher()
    synced, failing, never = (Cache(Script(), w, namespace="ns") for _ in range(3))
    synced.synced.set()
    failing.synced.set()
    failing.failing_since, failing.last_error = 50.0, TimeoutError("timed out")
    never.started_at = 40.0
    w.caches = [synced, failing, never]
    assert w.health(now=60.0) == ("apiserver unreachable or not answering: 2 watch(es) failing: "
                                  "pod for 10 s (TimeoutError: timed out); pod for 20 s (no answer to the first "
                                  "list yet)")
    failing.failing_since = None
    never.synced.set()
    assert w.health(now=60.0) == ""
