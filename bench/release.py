"""P3 whole blue-green release, P4 apiserver requests per release, P6 peak RSS — from the same runs.

Each run gets a fresh namespace with the first tutorial's blue (3 replicas, ready) behind production-svc and a
ServiceAccount `bench` (cluster-admin in that namespace only) whose token the release uses, so its requests are
exactly the audit-log lines of user system:serviceaccount:<ns>:bench. Runs alternate:

  greenlight   `python -m prefect_greenlight.cli blue-green -n NS --service production-svc --manifest green-dep.yaml
               --cleanup keep --json` (3 replicas, smoke test of every green pod, switch, verify, blue kept), with
               the bench's Prefect server already running
  script       bench/blue-green-deploy.sh blue green with the built kubectl (the tutorial's script)

Wall time is spawn -> exit of the child (os.wait4, which also gives its peak RSS and CPU time). An independent
EndpointSlice watch records when the Service really served green only. After each run the release is checked:
exit 0, selector on green-dep, only green's 3 ready pods behind the Service, blue still 3 ready.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench import harness
from bench.audit import AuditCursor, breakdown
from bench.given import SERVICE1, assert_released_blue_green, tutorial1
from bench.harness import (
    KUBECTL,
    PYTHON,
    TUTORIAL1,
    check,
    child_env,
    create_namespace,
    delete_created,
    ensure_cluster,
    prefect_server,
    service_account_kubeconfig,
)
from bench.rawkube import RawKube, SliceWatch
from bench.results import Recorder, median, ratio, say, summary

SCRIPT = Path(__file__).resolve().parent / "blue-green-deploy.sh"
pc = time.perf_counter


def greenlight_argv(namespace: str, kubeconfig: str, spec: str | None = None) -> list[str]:
    return [PYTHON, "-m", "prefect_greenlight.cli", "blue-green", "-n", namespace, "--service", SERVICE1, "--manifest",
            str(TUTORIAL1 / "green-dep.yaml"), "--cleanup", "keep", "--json", "--kubeconfig", kubeconfig,
            *(["--spec", spec] if spec else [])]


def spawn(argv: list[str], env: dict, cwd: Path, workdir: Path) -> dict:
    """Run to completion; wall time, exit code, peak RSS (MB, the child or its largest waited-for descendant) and
    CPU seconds from os.wait4, output from files (no pipes to drain while waiting)."""
    out, err = workdir / "stdout", workdir / "stderr"
    with open(out, "w") as o, open(err, "w") as e:
        t0 = pc()
        proc = subprocess.Popen(argv, stdout=o, stderr=e, env=env, cwd=cwd)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = pc() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"t0": t0, "wall_s": wall, "rc": proc.returncode, "maxrss_mb": ru.ru_maxrss / 1024,
            "cpu_s": ru.ru_utime + ru.ru_stime, "stdout": out.read_text(), "stderr": err.read_text()}


def one_run(kind: str, raw: RawKube, workdir: Path, code: Path | None = None, env_extra: dict | None = None) -> dict:
    """One release in a fresh namespace, measured and checked (greenlight from `code`, default harness.CODE)."""
    ns = create_namespace(f"rel-{kind[:2]}")
    tutorial1(ns)
    kubeconfig, user = service_account_kubeconfig(ns, workdir)
    code = code or harness.CODE
    if kind == "greenlight":
        argv, env = greenlight_argv(ns, kubeconfig), {**child_env(), "PYTHONPATH": f"{code}:{harness.ROOT}",
                                                      **(env_extra or {})}
    else:
        argv = ["bash", str(SCRIPT), "blue", "green"]
        env = {**os.environ, "KUBECTL": KUBECTL, "KUBECONFIG": kubeconfig, "NAMESPACE": ns,
               "KUBECACHEDIR": str(workdir / "kubectl-cache")}
    with SliceWatch(raw, ns, SERVICE1) as observer:
        cursor = AuditCursor()
        r = spawn(argv, env, code, workdir)
        check(r["rc"] == 0, f"{kind} release in {ns} exited {r['rc']}:\n{r['stderr'][-3000:]}\n{r['stdout'][-2000:]}")
        assert_released_blue_green(ns)
        green_at = observer.first_only("green-dep", 3, after=r["t0"])
    reqs = cursor.requests(user)
    check(reqs, f"no audit lines for {user}: is the audit log being written?")
    run = {"namespace": ns, "wall_s": r["wall_s"], "green_only_after_s": green_at - r["t0"],
           "maxrss_mb": r["maxrss_mb"], "cpu_s": r["cpu_s"], "requests": len(reqs), "by_kind": breakdown(reqs)}
    if kind == "greenlight":
        result = json.loads(r["stdout"])
        check(result["outcome"] == "released" and result["live_deployment"] == "green-dep", f"bad result {result}")
        run["steps"] = {s["step"]: s["seconds"] for s in result["steps"]}
        run["steps_total_s"] = round(sum(run["steps"].values()), 3)
    return run


def run(runs: int = 5, tag: str = "") -> dict:
    ensure_cluster()
    rec = Recorder("p3p4p6-release", 1800, tag)
    raw = RawKube()
    results: dict[str, list[dict]] = {"greenlight": [], "script": []}
    warm: dict[str, dict] = {}
    with prefect_server() as server, tempfile.TemporaryDirectory(prefix="greenlight-bench-") as tmp:
        workdir = Path(tmp)
        try:
            for kind in ("greenlight", "script"):
                say(f"warm-up {kind} run (discarded: first flow run on the server, kubectl discovery cache)")
                warm[kind] = one_run(kind, raw, workdir)
            for i in range(runs):
                for kind in (("greenlight", "script") if i % 2 == 0 else ("script", "greenlight")):
                    load_now = rec.note_load()
                    r = one_run(kind, raw, workdir)
                    r["load"] = load_now
                    results[kind].append(r)
                    say(f"run {i + 1}/{runs} {kind}: {r['wall_s']:.2f} s wall, green-only after "
                        f"{r['green_only_after_s']:.2f} s, {r['requests']} apiserver requests, peak RSS "
                        f"{r['maxrss_mb']:.0f} MB, CPU {r['cpu_s']:.2f} s")
        finally:
            delete_created()

    def fig(kind: str, key: str) -> dict:
        return summary([r[key] for r in results[kind]])

    keys = ("wall_s", "green_only_after_s", "requests", "maxrss_mb", "cpu_s")
    figures = {"prefect_api": server.url, "warm_up": warm,
               "greenlight": {k: fig("greenlight", k) for k in keys + ("steps_total_s",)},
               "script": {k: fig("script", k) for k in keys}, "runs": results}
    figures["greenlight"]["steps"] = {name: summary([r["steps"][name] for r in results["greenlight"]])
                                      for name in results["greenlight"][0]["steps"]}
    figures["greenlight"]["by_kind"] = results["greenlight"][-1]["by_kind"]
    figures["script"]["by_kind"] = results["script"][-1]["by_kind"]
    g, s = figures["greenlight"], figures["script"]
    figures["ratios"] = {k: ratio(g[k]["median"], s[k]["median"]) for k in keys}
    figures["targets"] = {"p3_wall_le_1x": figures["ratios"]["wall_s"] <= 1.0,
                          "p4_requests_le_1x": figures["ratios"]["requests"] <= 1.0,
                          "p6_rss_le_250mb": median([r["maxrss_mb"] for r in results["greenlight"]]) <= 250}
    rec.save(**figures)
    return {k: v for k, v in figures.items() if k != "runs"}


def ab(runs: int, a: str, b: str, b_cut: str, tag: str = "") -> dict:
    """A/B of two greenlight versions (A: `a`; B: `b` with GL_CUT=`b_cut`), runs interleaved ABAB/BABA so load
    drifts on the shared machine hit both alike. Medians, and the median of the paired differences A - B."""
    ensure_cluster()
    rec = Recorder("ab", 1800, tag or f"cut-{b_cut}")
    raw = RawKube()
    out: dict[str, list[dict]] = {"A": [], "B": []}
    variants = {"A": (Path(a), {}), "B": (Path(b), {"GL_CUT": b_cut})}
    with prefect_server(), tempfile.TemporaryDirectory(prefix="greenlight-bench-") as tmp:
        one_run("greenlight", raw, Path(tmp), *variants["A"])  # warm-up, discarded
        for i in range(runs):
            for which in ("A", "B") if i % 2 == 0 else ("B", "A"):
                rec.note_load()
                out[which].append(one_run("greenlight", raw, Path(tmp), *variants[which]))
            say(f"pair {i + 1}/{runs}: A {out['A'][-1]['wall_s']:.2f} s, B {out['B'][-1]['wall_s']:.2f} s")
        delete_created()
    keys = ("wall_s", "cpu_s", "green_only_after_s", "requests", "maxrss_mb")
    figures = {"A": {"code": a, **{k: summary([r[k] for r in out["A"]]) for k in keys}},
               "B": {"code": b, "GL_CUT": b_cut, **{k: summary([r[k] for r in out["B"]]) for k in keys}},
               "saving_median_paired": {k: round(median([x[k] - y[k] for x, y in zip(out["A"], out["B"])]), 3)
                                        for k in keys}}
    rec.save(**figures)
    return figures
