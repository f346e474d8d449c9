"""P3, where the time goes. Three views of the same CLI release (first tutorial, cleanup keep):

1. start-up: interpreter alone, `import prefect_greenlight.cli.main`, + `import prefect_greenlight.flows.blue_green`, timed from outside (medians),
   and `python -X importtime` self time summed per top-level package;
2. phases: the release run through bench/probe.py (wall-clock marks from spawn to exit, task bodies vs their
   timeline steps, Prefect API requests and events);
3. cProfile of one more probed run: the functions with the largest cumulative time (main thread only).
"""

from __future__ import annotations

import json
import pstats
import re
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench import harness
from bench.given import SERVICE1, assert_released_blue_green, tutorial1
from bench.harness import (
    KUBECONFIG,
    PYTHON,
    TUTORIAL1,
    check,
    child_env,
    create_namespace,
    delete_namespaces,
    ensure_cluster,
    prefect_server,
)
from bench.results import Recorder, median, say, summary

TASK_OF_STEP = {"apply": "apply-green", "wait-ready": "wait-green-ready", "smoke-test": "smoke-test",
                "switch": "switch-traffic", "verify-endpoints": "verify-endpoints",
                "post-switch": "post-switch-verification", "cleanup": "cleanup-blue"}


def _wall(code: str, cwd: Path, runs: int = 5) -> dict:
    xs = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([PYTHON, "-c", code], cwd=cwd, env=child_env(), check=True, timeout=120)
        xs.append(time.perf_counter() - t0)
    return summary(xs)


def importtime(cwd: Path) -> dict:
    """-X importtime self time per top-level package (median of 3), and the start-up walls."""
    per_run: list[dict[str, float]] = []
    for _ in range(3):
        proc = subprocess.run([PYTHON, "-X", "importtime", "-c", "import prefect_greenlight.cli.main, prefect_greenlight.flows.blue_green"], cwd=cwd,
                              env=child_env(), capture_output=True, text=True, timeout=120)
        check(proc.returncode == 0, proc.stderr[-2000:])
        by_pkg: dict[str, float] = defaultdict(float)
        for line in proc.stderr.splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
            if m:
                by_pkg[m.group(4).split(".")[0]] += int(m.group(1)) / 1e6
        per_run.append(by_pkg)
    pkgs = sorted({p for r in per_run for p in r}, key=lambda p: -median([r.get(p, 0) for r in per_run]))
    top = {p: round(median([r.get(p, 0) for r in per_run]), 3) for p in pkgs[:15]}
    total = round(median([sum(r.values()) for r in per_run]), 3)
    return {"self_time_by_package_s": top, "total_self_s": total,
            "wall_python_c_pass": _wall("pass", cwd),
            "wall_import_flows_cli": _wall("import prefect_greenlight.cli.main", cwd),
            "wall_import_flows_cli_and_blue_green": _wall("import prefect_greenlight.cli.main, prefect_greenlight.flows.blue_green", cwd)}


def probed_release(cwd: Path, workdir: Path, cprofile: str | None = None) -> dict:
    ns = create_namespace("prof")
    try:
        tutorial1(ns)
        out = workdir / f"{ns}.json"
        env = child_env(BENCH_PROBE_OUT=str(out), **({"BENCH_PROBE_CPROFILE": cprofile} if cprofile else {}))
        argv = [PYTHON, "-m", "bench.probe", "blue-green", "-n", ns, "--service", SERVICE1, "--manifest",
                str(TUTORIAL1 / "green-dep.yaml"), "--cleanup", "keep", "--json", "--kubeconfig", KUBECONFIG]
        spawn = time.time()
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        exited = time.time()
        check(proc.returncode == 0, f"probed release failed:\n{proc.stderr[-3000:]}")
        assert_released_blue_green(ns)
        data = json.loads(out.read_text())
        data["marks"].update(spawn=spawn, exit=exited)
        data["result"] = json.loads(proc.stdout)
        return data
    finally:
        delete_namespaces(ns)


def _spans(data: dict, what: str) -> list[dict]:
    return [s for s in data["spans"] if s["what"] == what]


def phases(data: dict) -> dict[str, float]:
    m = data["marks"]
    call, body = _spans(data, "flow call")[0], _spans(data, "flow body")[0]
    steps = {s["step"]: s["seconds"] for s in data["result"]["steps"]}
    out = {
        "interpreter start-up": m["probe_start"] - m["spawn"],
        "import prefect_greenlight.cli.main (argparse, pydantic spec)": m["cli_imported"] - m["probe_start"],
        "import prefect_greenlight.flows.blue_green (prefect, kubernetes, tasks)": m["flow_imported"] - m["cli_imported"],
        "CLI before the flow call (args, spec)": call["start"] - m["main_start"],
        "Prefect flow engine before the body": body["start"] - call["start"],
        "flow body": body["end"] - body["start"],
        "  of which timeline steps": sum(steps.values()),
        "  of which outside the steps (connect, lock, journal)": body["end"] - body["start"] - sum(steps.values()),
        "Prefect flow engine after the body": call["end"] - body["end"],
        "CLI after the flow (print)": m["main_end"] - call["end"],
        "exit: threading exit hooks (Prefect drains its log/event workers)": m["drains_done"] - m["main_end"],
        "exit: atexit handlers": m["atexit_last"] - m["drains_done"],
        "exit: interpreter teardown (after the last atexit handler)": m["exit"] - m["atexit_last"],
        "TOTAL wall (spawn -> exit)": m["exit"] - m["spawn"],
    }
    for step, secs in steps.items():
        task = TASK_OF_STEP.get(step)
        fn = _spans(data, f"task body {task}") if task else []
        out[f"step {step}"] = secs
        if fn:
            out[f"step {step}: Prefect task overhead"] = secs - (fn[0]["end"] - fn[0]["start"])
    for what in sorted({s["what"] for s in data["spans"]} - {"flow call", "flow body"}):
        if what.startswith("exit hook"):
            out[what] = sum(s["end"] - s["start"] for s in _spans(data, what))
        elif not what.startswith("task body"):
            out[f"in body: {what}"] = sum(s["end"] - s["start"] for s in _spans(data, what))
    return out


def prefect_traffic(data: dict) -> dict:
    """Prefect API requests per (method, path pattern) and events per name, with where they fall."""
    body = _spans(data, "flow body")[0]
    reqs: dict[str, int] = defaultdict(int)
    in_body = 0
    for h in data["http"]:
        path = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "{id}", h["path"])
        reqs[f"{h['method']} {path}"] += 1
        in_body += body["start"] <= h["start"] <= body["end"]
    events: dict[str, int] = defaultdict(int)
    for e in data["events"]:
        events[e["event"]] += 1
    before = sum(h["start"] < body["start"] for h in data["http"])
    return {"http_requests": len(data["http"]), "http_before_flow_body": before, "http_in_flow_body": in_body,
            "http_by_path": dict(sorted(reqs.items(), key=lambda kv: -kv[1])),
            "http_seconds_total": round(sum(h["end"] - h["start"] for h in data["http"]), 3),
            "events": len(data["events"]), "events_by_name": dict(events)}


def cprofile_top(path: str, n: int = 60) -> list[str]:
    """Largest cumulative times, import machinery and module bodies left out (the start-up view covers them)."""
    stats = pstats.Stats(path)
    rows = []
    for (file, line, func), (_cc, nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if file.startswith("<frozen") or func in ("<module>", "<built-in method builtins.exec>",
                                                  "<built-in method builtins.__import__>") or "bench/probe" in file:
            continue
        rows.append((ct, nc, f"{Path(file).as_posix().split('site-packages/')[-1]}:{line}({func})"))
    rows.sort(reverse=True)
    return [f"{ct:7.3f} s cum  {nc:6d} calls  {where}" for ct, nc, where in rows[:n]]


def run(runs: int = 3, tag: str = "") -> dict:
    ensure_cluster()
    cwd = harness.CODE
    rec = Recorder("p3-profile", 1800, tag)
    with prefect_server() as server, tempfile.TemporaryDirectory(prefix="greenlight-bench-") as tmp:
        workdir = Path(tmp)
        say("start-up and -X importtime")
        startup = importtime(cwd)
        say("warm-up probed release (discarded)")
        probed_release(cwd, workdir)
        runs_data = []
        for i in range(runs):
            rec.note_load()
            runs_data.append(probed_release(cwd, workdir))
            say(f"probed release {i + 1}/{runs}: {phases(runs_data[-1])['TOTAL wall (spawn -> exit)']:.2f} s")
        say("cProfile'd release")
        prof = str(workdir / "release.prof")
        profiled = probed_release(cwd, workdir, cprofile=prof)
        top = cprofile_top(prof)
    per_run = [phases(d) for d in runs_data]
    table = {k: round(median([p.get(k, 0.0) for p in per_run]), 3) for k in per_run[0]}
    figures = {"prefect_api": server.url, "startup": startup, "phases_median_s": table,
               "phases_runs": per_run, "prefect_traffic": prefect_traffic(runs_data[-1]),
               "cprofile_wall_s": round(phases(profiled)["TOTAL wall (spawn -> exit)"], 3), "cprofile_top": top}
    rec.save(**figures)
    return {k: v for k, v in figures.items() if k not in ("phases_runs",)}
