"""Run the greenlight CLI in this process with timing probes, to find where a release's wall time goes:

    BENCH_PROBE_OUT=phases.json [BENCH_PROBE_CPROFILE=run.prof] python -m bench.probe blue-green ...

Probes (wrappers installed in this process only; greenlight's files are not touched): wall-clock marks around
the imports, the CLI's main(), the flow call and the flow body (`prefect_greenlight.flows.blue_green.run_release`); every task
body (`Task.fn`); connect(), the Service lock, the release artifact; every HTTP request to the Prefect API
(httpx) and every event the events worker sends; and the interpreter's exit: Prefect drains its log and event
workers in threading's exit hooks, then atexit handlers run, then the interpreter tears down.
"""

import time

T = {"probe_start": time.time()}

import atexit  # noqa: E402 - the first mark must come before anything else
import functools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

OUT = os.environ["BENCH_PROBE_OUT"]
SPANS: list[dict] = []  # {"what", "start", "end"} wall-clock seconds
HTTP: list[dict] = []
EVENTS: list[dict] = []
_PROFILE = None


def _write() -> None:
    T["atexit_last"] = time.time()
    if _PROFILE is not None:
        _PROFILE.disable()
        _PROFILE.dump_stats(os.environ["BENCH_PROBE_CPROFILE"])
    with open(OUT, "w") as f:
        json.dump({"marks": T, "spans": SPANS, "http": HTTP, "events": EVENTS}, f)


# Registered first, so they run last: threading's exit hooks (Prefect's drains) LIFO, then atexit LIFO.
atexit.register(_write)
threading._register_atexit(lambda: T.__setitem__("drains_done", time.time()))  # type: ignore[attr-defined]


def _timed_exit_hook(register):
    """Every exit hook registered from now on is timed (a span named after it)."""
    def timed_register(fn, *args, **kwargs):
        name = getattr(fn, "__qualname__", repr(fn))

        def hook(*a, **kw):
            start = time.time()
            try:
                return fn(*a, **kw)
            finally:
                SPANS.append({"what": f"exit hook {name}", "start": start, "end": time.time()})
        register(hook, *args, **kwargs)
        return fn
    return timed_register


atexit.register = _timed_exit_hook(atexit.register)
threading._register_atexit = _timed_exit_hook(threading._register_atexit)  # type: ignore[attr-defined]

if os.environ.get("BENCH_PROBE_CPROFILE"):
    import cProfile

    _PROFILE = cProfile.Profile()
    _PROFILE.enable()


def span(what: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.time()
        try:
            return fn(*args, **kwargs)
        finally:
            SPANS.append({"what": what, "start": start, "end": time.time()})
    return wrapper


def _instrument_http() -> None:
    import httpx

    def record(request, start: float) -> None:
        HTTP.append({"method": request.method, "path": request.url.path, "start": start, "end": time.time(),
                     "thread": threading.current_thread().name})

    sync_send, async_send = httpx.Client.send, httpx.AsyncClient.send

    def send(self, request, *args, **kwargs):
        start = time.time()
        try:
            return sync_send(self, request, *args, **kwargs)
        finally:
            record(request, start)

    async def asend(self, request, *args, **kwargs):
        start = time.time()
        try:
            return await async_send(self, request, *args, **kwargs)
        finally:
            record(request, start)

    httpx.Client.send, httpx.AsyncClient.send = send, asend


def _instrument_events() -> None:
    from prefect.events.worker import EventsWorker

    handle = EventsWorker._handle

    async def _handle(self, event):
        start = time.time()
        try:
            return await handle(self, event)
        finally:
            EVENTS.append({"event": event.event, "start": start, "end": time.time()})

    EventsWorker._handle = _handle


# Functions whose time is worth seeing on its own, wherever greenlight imported them (`from x import f` copies the
# reference, so every module's global that *is* the original is replaced). Missing ones are skipped: the code
# under measurement changes while the bench lives.
SPANNED = {
    "prefect_greenlight.tasks.kube.client.connect": "connect",
    "prefect_greenlight.tasks.kube.permissions.require": "permission check (SSAR)",
    "prefect_greenlight.tasks.kube.lease.ServiceLock.acquire": "lock acquire",
    "prefect_greenlight.tasks.kube.lease.ServiceLock.release": "lock release",
    "prefect_greenlight.tasks.record.report.markdown_artifact": "markdown/table artifacts",
    "prefect_greenlight.tasks.record.report.table_artifact": "markdown/table artifacts",
    "prefect.artifacts.create_progress_artifact": "progress artifact",
    "prefect.artifacts.update_progress_artifact": "progress artifact",
    "prefect_greenlight.tasks.bluegreen.smoke.endpoint_counts": "journal: endpoint counts",
    "prefect_greenlight.tasks.kube.history.record_release": "journal: history on the Service",
    "prefect_greenlight.tasks.record.events.emit": "journal: release events",
}


def _resolve(dotted: str):
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        owners = [obj]
        for name in parts[i:]:
            owners.append(getattr(owners[-1], name))
        return owners[-2], parts[-1], owners[-1]
    raise ImportError(dotted)


def _instrument_greenlight() -> None:
    import prefect_greenlight.flows.blue_green as bg

    bg.run_release = span("flow body", bg.run_release)
    for dotted, what in SPANNED.items():
        try:
            owner, name, original = _resolve(dotted)
        except (ImportError, AttributeError):
            continue
        wrapped = span(what, original)
        setattr(owner, name, wrapped)
        for mod_name, mod in list(sys.modules.items()):
            if mod_name.startswith("prefect_greenlight.") and getattr(mod, name, None) is original:
                setattr(mod, name, wrapped)
    from prefect.tasks import Task

    for value in list(vars(bg).values()):
        if isinstance(value, Task):
            value.fn = span(f"task body {value.name}", value.fn)
    bg.blue_green_release = span("flow call", bg.blue_green_release)


def main() -> int:
    import prefect_greenlight.cli.main

    T["cli_imported"] = time.time()
    import prefect_greenlight.flows.blue_green  # noqa: F401 - Prefect, kubernetes and the tasks, as cmd_blue_green imports them

    T["flow_imported"] = time.time()
    _instrument_http()
    _instrument_events()
    _instrument_greenlight()
    T["main_start"] = time.time()
    rc = prefect_greenlight.cli.main.main(sys.argv[1:])
    T["main_end"] = time.time()
    return rc


if __name__ == "__main__":
    sys.exit(main())
