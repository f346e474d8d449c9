"""P5: many blue-green releases of distinct Services (each the first tutorial in its own namespace) at the same
time against ONE Prefect server (SQLite), compared with one release measured the same way in the same run.

Modes:
  cli      one `python -m prefect_greenlight.cli blue-green ...` process per release, all started at once (what N people or
           N CI jobs typing the README's command would do)
  threads  one driver process (bench/driver.py) that imports greenlight once and runs every release as its own
           top-level flow run in a thread (what one long-lived worker process serving releases would do);
           `threads:10` runs at most 10 at a time
  worker   prefect.yaml's blue-green deployment on a greenlight work pool, ONE greenlight worker (`--limit` = the
           number of releases), every release a flow run created at once through the REST API as the UI's Run does
           (bench/workerbench.py); wall = first create -> last Completed seen; the worker's peak RSS (VmHWM).
           `--workers 1,3`: the worker mode once per count, N greenlight worker processes on the same pool (the
           same host; each `--limit ceil(releases / N)`, so N workers have the capacity of one, as
           tests/e2e/test_workers_one_pool.py), started before the clock and stopped after; results `worker` (1)
           and `worker-3w` (3), with how many runs each worker ran (the runs' infrastructure ids)
  script   the tutorial script (bench/blue-green-deploy.sh blue green, kubectl) once per namespace, all at once

Every release must succeed (exit 0 / outcome released, selector on green, only green's 3 ready pods behind the
Service) and every flow run must end Completed on the server; the server log is scanned for SQLite trouble.

The smoke checks get PATIENT_SMOKE (15 attempts, 1 s apart, instead of 3): when ~150 pods turn Ready at once the
local cluster's app plane (tests/cluster/appd.py, which creates the kwok PortForward object of every new pod) lags
by seconds, and kwok answers "no forward found for port 80" meanwhile — a limit of the test cluster (a real kubelet
serves a Ready pod at once), not of greenlight.
Memory: the lowest MemAvailable seen while a mode runs, against the value just before it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench import harness
from bench.given import assert_released_blue_green, tutorial1
from bench.harness import (
    KUBECONFIG,
    KUBECTL,
    PYTHON,
    TUTORIAL1,
    BenchError,
    check,
    child_env,
    create_namespace,
    delete_namespaces,
    ensure_cluster,
    prefect_server,
)
from bench.release import SCRIPT, greenlight_argv
from bench.results import Recorder, median, ratio, say, summary
from bench.workerbench import GREENLIGHT_POOL, WorkerProc, breakdown, create_run, deploy, parameters, wait_final
from prefect_greenlight.worker.decisions import InfraId

# The server logs every retryable database error (PREFECT_API_LOG_RETRYABLE_ERRORS, set by the harness) and answers
# it 503; Prefect's client then backs off (about 2, 4, 8, 16 s) and tries again, up to 5 times.
RETRYABLE = "Encountered retryable exception"
TROUBLE = re.compile(r"Encountered (retryable )?exception|database is locked|QueuePool limit", re.I)


PATIENT_SMOKE = {"smoke": [{"attempts": 15, "interval_s": 1.0}]}


class MemSampler:
    """Lowest MemAvailable (MB) while running, sampled every 0.25 s."""

    def __init__(self) -> None:
        self.before = self.now()
        self.lowest = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now() -> float:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.lowest = min(self.lowest, self.now())

    def __enter__(self) -> "MemSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_used_mb(self) -> float:
        return round(self.before - self.lowest)


def prepare(n: int, prefix: str) -> list[str]:
    """n namespaces, each with the first tutorial's blue ready (set up 4 at a time)."""
    def one(_: int) -> str:
        ns = create_namespace(prefix)
        tutorial1(ns)
        return ns

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, range(n)))


def verify(namespaces: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(assert_released_blue_green, namespaces))


def flow_run_states(api: str, since: float) -> dict[str, int]:
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since - 1))
    runs, offset = [], 0
    while True:
        r = requests.post(f"{api}/flow_runs/filter", timeout=30, json={
            "flow_runs": {"start_time": {"after_": iso}}, "limit": 200, "offset": offset})
        check(r.ok, f"flow run filter: HTTP {r.status_code}")
        page = r.json()
        runs += page
        if len(page) < 200:
            break
        offset += 200
    states: dict[str, int] = {}
    for run in runs:
        states[run["state_name"]] = states.get(run["state_name"], 0) + 1
    return states


def log_trouble(log: Path, offset: int) -> dict:
    """Retryable (503) and other database errors the server logged since `offset`, with the distinct causes."""
    retryable, other, causes = 0, 0, set()
    with open(log, errors="replace") as f:
        f.seek(offset)
        for line in f:
            if RETRYABLE in line:
                retryable += 1
            elif TROUBLE.search(line):
                other += 1
            if "OperationalError" in line or "database is locked" in line:
                causes.add(line.strip()[-160:])
    return {"retryable_503": retryable, "other_errors": other, "causes": sorted(causes)[:5]}


def _wait(proc: subprocess.Popen, t0: float, out: dict) -> None:
    _, status, ru = os.wait4(proc.pid, 0)
    out[proc.pid] = {"rc": os.waitstatus_to_exitcode(status), "wall_s": time.perf_counter() - t0,
                     "maxrss_mb": ru.ru_maxrss / 1024}


def spawn_all(namespaces: list[str], workdir: Path, command) -> dict:
    """`command(ns) -> (argv, env)` once per namespace, all started at once; wall = first spawn -> last exit."""
    procs, done = {}, {}
    t0 = time.perf_counter()
    for ns in namespaces:
        log = open(workdir / f"{ns}.log", "w")
        argv, env = command(ns)
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=harness.CODE)
        procs[p.pid] = ns
        threading.Thread(target=_wait, args=(p, t0, done), daemon=True).start()
    while len(done) < len(procs):
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    failed = {procs[pid]: _last_error((workdir / f"{procs[pid]}.log").read_text())
              for pid, d in done.items() if d["rc"]}
    return {"wall_s": wall, "failed": failed,
            "per_release_wall_s": summary([d["wall_s"] for d in done.values()]),
            "per_process_peak_rss_mb": summary([d["maxrss_mb"] for d in done.values()], 1)}


def cli_mode(namespaces: list[str], workdir: Path) -> dict:
    """One CLI process per release, all started at once."""
    (workdir / "spec.yaml").write_text(json.dumps(PATIENT_SMOKE))  # JSON is YAML
    return spawn_all(namespaces, workdir,
                     lambda ns: (greenlight_argv(ns, KUBECONFIG, str(workdir / "spec.yaml")), child_env()))


def script_mode(namespaces: list[str], workdir: Path) -> dict:
    """The tutorial script once per namespace, all started at once (kubectl's discovery cache shared), with the
    smoke check's patience greenlight gets here (SMOKE_ATTEMPTS=15, 1 s apart, as PATIENT_SMOKE)."""
    def command(ns: str) -> tuple[list[str], dict]:
        return ["bash", str(SCRIPT), "blue", "green"], {**os.environ, "KUBECTL": KUBECTL, "KUBECONFIG": KUBECONFIG,
                                                         "NAMESPACE": ns, "SMOKE_ATTEMPTS": "15",
                                                         "KUBECACHEDIR": str(workdir / "kubectl-cache")}
    return spawn_all(namespaces, workdir, command)


def _create(api: str, dep: str, ns: str) -> str | None:
    """One run created (503s retried, bench/workerbench.py create_run), or None: the server refused it."""
    try:
        return create_run(api, dep, parameters(ns, PATIENT_SMOKE))
    except (BenchError, requests.RequestException) as exc:
        say(f"{ns}: no flow run: {exc}"[:300])
        return None


def worker_key(count: int) -> str:
    """The results key of the worker mode with `count` workers (`worker` for one, as before `--workers`)."""
    return "worker" if count == 1 else f"worker-{count}w"


def worker_limit(releases: int, count: int) -> int:
    """Each of `count` workers takes at most this many at once: together all `releases`, no more."""
    return max(1, -(-releases // count))


def runs_per_worker(infrastructure_pids: list[str | None], worker_pids: list[int]) -> list[int]:
    """How many runs each worker process ran, from the runs' infrastructure ids (worker/decisions.py InfraId:
    `greenlight:<host>:<pid>:<instance>:<thread>`); runs no worker recorded are not counted."""
    counts = dict.fromkeys(worker_pids, 0)
    for text in infrastructure_pids:
        owner = InfraId.parse(text)
        if owner is not None and owner.pid in counts:
            counts[owner.pid] += 1
    return [counts[p] for p in worker_pids]


@contextlib.contextmanager
def worker_pool(count: int, releases: int, api: str, deployment_id: str, workdir: Path):
    """`count` greenlight workers on the pool, each its own process (name bench-worker-<i>), stopped at the end."""
    with contextlib.ExitStack() as stack:
        procs = [stack.enter_context(WorkerProc("greenlight", GREENLIGHT_POOL, worker_limit(releases, count),
                                                workdir / f"greenlight-worker-{count}w-{i}.log",
                                                name=f"bench-worker-{count}w-{i}"))
                 for i in range(count)]
        yield {"api": api, "deployment_id": deployment_id, "procs": procs, "count": count,
               "limit": worker_limit(releases, count)}


def worker_mode(namespaces: list[str], worker: dict) -> dict:
    """Every release a deployment run, all created at once (one thread per POST), run by the pool's greenlight
    workers; wall = first create -> last final state seen (all polled in one request every 0.2 s). A run the server
    would not create (503 after the retries) is a failed release."""
    api, dep = worker["api"], worker["deployment_id"]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(namespaces)) as pool:
        made = dict(zip(namespaces, pool.map(lambda ns: _create(api, dep, ns), namespaces)))
    created = time.perf_counter() - t0
    ids = [i for i in made.values() if i]
    ends = wait_final(api, ids, timeout_s=1800, poll_s=0.2) if ids else {}
    wall = max((at for _, at in ends.values()), default=created) - t0
    steps = {i: breakdown(api, i) for i in ids}
    failed = {ns: "create_flow_run refused (503 after retries)" for ns, i in made.items() if not i}
    failed.update({ns: f"{ends[i][0]}: {steps[i]['states']}" for ns, i in made.items()
                   if i and ends[i][0] != "COMPLETED"})
    keys = ("created_to_pending_s", "pending_to_running_s", "running_to_final_s", "created_to_final_s")
    return {"wall_s": wall, "failed": failed, "created": len(ids), "all_created_s": round(created, 3),
            "per_release_wall_s": summary([at - t0 for _, at in ends.values()]),
            **{f"per_run_{k}": summary([s[k] for s in steps.values()]) for k in keys},
            "workers": worker["count"], "limit_per_worker": worker["limit"],
            "runs_per_worker": runs_per_worker([s["infrastructure_pid"] for s in steps.values()],
                                               [p.proc.pid for p in worker["procs"]]),
            "workers_peak_rss_mb": [round(p.peak_rss_mb(), 1) for p in worker["procs"]],
            "worker_peak_rss_mb": round(max(p.peak_rss_mb() for p in worker["procs"]), 1)}


def _run_mode(mode: str, namespaces: list[str], limit: int, workdir: Path, worker: dict | None) -> dict:
    if mode == "cli":
        return cli_mode(namespaces, workdir)
    if mode == "script":
        return script_mode(namespaces, workdir)
    if mode == "worker":
        check(worker is not None, "worker mode without a worker")
        return worker_mode(namespaces, worker)
    return threads_mode(namespaces, limit, workdir)


def _last_error(log: str) -> str:
    lines = [line for line in log.splitlines() if "Error" in line or "FAILED" in line or "error:" in line]
    return (lines[-1] if lines else log[-300:])[:300]


def threads_mode(namespaces: list[str], limit: int, workdir: Path) -> dict:
    """One driver process; wall = its spawn -> exit (one import, then the releases in threads)."""
    jobs, out = workdir / "jobs.json", workdir / "driver-out.json"
    jobs.write_text(json.dumps({"namespaces": namespaces, "limit": limit, "kubeconfig": KUBECONFIG,
                                "manifest": str(TUTORIAL1 / "green-dep.yaml"), "spec": PATIENT_SMOKE}))
    out.unlink(missing_ok=True)
    t0, start = time.perf_counter(), time.time()
    proc = subprocess.run([PYTHON, "-m", "bench.driver", str(jobs), str(out)], env=child_env(), cwd=harness.CODE,
                          capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    check(out.exists(), f"driver wrote nothing:\n{proc.stderr[-3000:]}")
    data = json.loads(out.read_text())
    failed = {r["namespace"]: r.get("error", r["outcome"])[:300] for r in data["results"] if r["outcome"] != "released"}
    return {"wall_s": wall, "failed": failed, "import_s": data["imported"] - start,
            "releases_s": data["done"] - data["imported"],
            "per_release_wall_s": summary([r["end"] - r["start"] for r in data["results"]]),
            "driver_peak_rss_mb": round(data["maxrss_mb"], 1)}


def measure(mode: str, n: int, limit: int, server, workdir: Path, worker: dict | None = None) -> dict:
    """Run n releases in `mode`; the ones that succeeded are checked, the failed ones reported (not raised: the
    other modes still run; run() fails loudly at the end)."""
    namespaces = prepare(n, f"p5-{mode[:3]}")
    log = Path(server.home) / "server.log"
    offset, since = log.stat().st_size, time.time()
    try:
        with MemSampler() as mem:
            figures = _run_mode(mode, namespaces, limit, workdir, worker)
        verify([ns for ns in namespaces if ns not in figures["failed"]])
    finally:
        delete_namespaces(*namespaces, wait_s=300)
    states = flow_run_states(server.url, since)
    succeeded = n - len(figures["failed"])
    want = {} if mode == "script" else {"Completed": succeeded}  # the script makes no flow runs
    check({k: v for k, v in states.items() if k == "Completed"} == {k: v for k, v in want.items() if v},
          f"flow run states after {mode}: {states}, {succeeded} released")
    figures.update(releases=n, succeeded=succeeded, flow_run_states=states, peak_memory_used_mb=mem.peak_used_mb,
                   server_log=log_trouble(log, offset))
    figures["failure_reasons"] = sorted({v[:160] for v in figures["failed"].values()})[:3]
    return figures


def run(releases: int = 50, modes: list[str] | None = None, limit: int = 0, tag: str = "",
        databases: list[str] | None = None, workers: list[int] | None = None) -> dict:
    """Every mode on every database (the worker mode once per worker count); one release of the same mode
    (median of 3) is the reference."""
    ensure_cluster()
    rec = Recorder("p5-concurrent", 3600, tag)
    out: dict = {}
    modes = modes or ["threads", "cli"]
    for database in databases or ["sqlite"]:
        with prefect_server(database) as server, tempfile.TemporaryDirectory(prefix="greenlight-bench-") as tmp:
            workdir = Path(tmp)
            deployment_id = deploy(server.url)[GREENLIGHT_POOL] if "worker" in modes else ""
            for name in modes:
                if name != "worker":
                    _warm_up(name, server, workdir, None)
                    out[f"{database}/{name}"] = _one_mode(name, releases, limit, server, workdir, None, rec)
                    continue
                for count in workers or [1]:
                    with worker_pool(count, releases, server.url, deployment_id, workdir) as pool:
                        _warm_up("worker", server, workdir, pool)
                        out[f"{database}/{worker_key(count)}"] = _one_mode("worker", releases, limit, server,
                                                                           workdir, pool, rec)
            _versus_script(out, database, releases)
    rec.save(**out)
    failed = {k: f"{v['releases'] - v['succeeded']} failed: {v['failure_reasons']}" for k, v in out.items()
              if v["succeeded"] < v["releases"]}
    check(not failed, f"not every release succeeded (figures saved): {failed}")
    return out


def _warm_up(name: str, server, workdir: Path, pool: dict | None) -> None:
    """Discarded: as many releases at once as there are workers (one each, likely), else one."""
    mode, n = name.partition(":")[0], pool["count"] if pool else 1
    say(f"{server.database}: warm-up, {n} {mode} release(s) (discarded)")
    measure(mode, n, 0, server, workdir, pool)


def _one_mode(name: str, releases: int, limit: int, server, workdir: Path, worker: dict | None,
              rec: Recorder) -> dict:
    database = server.database
    mode, _, cap = name.partition(":")  # "threads:10": at most 10 releases at a time
    ones = [measure(mode, 1, 0, server, workdir, worker) for _ in range(3)]
    check(all(o["succeeded"] == 1 for o in ones), f"a single {mode} release failed: {ones}")
    singles = [o["wall_s"] for o in ones]
    cap_n = int(cap) if cap else limit
    say(f"{database} {name}: one release {median(singles):.2f} s (median of 3); now {releases} at once "
        f"(limit {cap_n or 'none'}, load {rec.note_load()})")
    many = measure(mode, releases, cap_n, server, workdir, worker)
    many.update(one_release_wall_s=summary(singles), ratio_vs_one=ratio(many["wall_s"], median(singles)),
                one_release_runs=ones, load_after=harness.load())
    many["target_le_3x"] = many["ratio_vs_one"] <= 3 and many["succeeded"] == releases
    if mode == "threads":  # the release alone, in a process that has imported greenlight already
        many["one_release_in_warm_process_s"] = summary([o["releases_s"] for o in ones])
    many["limit"] = cap_n
    say(f"{database} {name}: {many['succeeded']} of {releases} released in {many['wall_s']:.1f} s = "
        f"{many['ratio_vs_one']}x one release; peak memory +{many['peak_memory_used_mb']} MB; "
        f"server: {many['server_log']['retryable_503']} retryable 503s"
        + (f"; {many['workers']} worker(s), runs each {many['runs_per_worker']}, peak RSS "
           f"{many['workers_peak_rss_mb']} MB" if mode == "worker" else ""))
    return many


def _versus_script(out: dict, database: str, releases: int) -> None:
    """P5 through the worker(s): each worker count's wall against the scripts' in the same run (target <= 1.0x,
    all released); P6w per worker process."""
    s = out.get(f"{database}/script")
    for key, w in out.items():
        if s and key.startswith(f"{database}/worker"):
            w["ratio_vs_script"] = ratio(w["wall_s"], s["wall_s"])
            w["target_p5w_le_1x_all"] = w["ratio_vs_script"] <= 1.0 and w["succeeded"] == releases
            w["target_p6w_le_400mb"] = w["worker_peak_rss_mb"] <= 400
