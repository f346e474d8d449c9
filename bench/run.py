"""greenlight's benchmarks. Each subcommand starts its own Prefect server, uses the shared local cluster
(started only if it is down), works in `bench-*` namespaces it deletes afterwards, checks that what it measured
really happened (BenchError otherwise, exit 1) and writes bench/results/<name>-<time>.json.

    .venv/bin/python -m bench.run switch   [--runs 7]        P1 switch + P2 rollback latency vs the floor
    .venv/bin/python -m bench.run release  [--runs 5]        P3 wall time, P4 apiserver requests, P6 peak RSS
    .venv/bin/python -m bench.run deployrun [--runs 5]       P3w deployment run -> Completed via the greenlight worker
    .venv/bin/python -m bench.run profile  [--runs 3]        P3: where the time goes (importtime, phases, cProfile)
    .venv/bin/python -m bench.run concurrent [--releases 50] P5: many releases against one Prefect server
    .venv/bin/python -m bench.run burst [--runs 50]          50 flow runs created at once: SQLite as shipped vs
                                                             greenlight's settings vs PostgreSQL (no cluster)
    .venv/bin/python -m bench.run canary   [--runs 3]        canary step time beyond the pods' own readiness
    .venv/bin/python -m bench.run judge    [--rounds 50]     the canary judge: time per step, FP/FN rates, scipy cost
    .venv/bin/python -m bench.run scale    [--runs 1]        P7 requests and wall beyond readiness at 3/30/150 replicas
    .venv/bin/python -m bench.run proxylag [--runs 5]        P-lag: kube-proxy's lag through the ClusterIP vs verified
    .venv/bin/python -m bench.run window   [--runs 5]        P2w: rollback inside a rollback window vs the floor
    .venv/bin/python -m bench.run gateway [--runs 5]         a weight change through the gateway vs a replica step
    .venv/bin/python -m bench.run pipeline [--runs 3]        pipeline overhead beyond its releases, 3 stages x 1-2 targets
    .venv/bin/python -m bench.run sweep                      delete namespaces an interrupted run left behind
    .venv/bin/python -m bench.run ab --a DIR --b DIR --cut C  A/B of a prototyped cut (interleaved CLI releases)
    .venv/bin/python -m bench.run snapshot [COMMIT]          git archive COMMIT's flows/ tasks/ into /tmp (for --code)

Global options (before the subcommand): --code DIR measures the greenlight code in DIR (a directory holding
flows/ and tasks/: `git archive` of a commit, see bench/README.md, or a scratch copy with a prototyped cut)
instead of the working tree; --tag T is appended to the results file name.
"""

from __future__ import annotations

import argparse
import json
import sys

from bench.harness import BenchError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--code", help="measure the greenlight code in this directory (default: the working tree)")
    p.add_argument("--tag", default="", help="suffix of the results file name, e.g. cut-exit")
    sub = p.add_subparsers(dest="what", required=True)
    sub.add_parser("switch").add_argument("--runs", type=int, default=7)
    sub.add_parser("release").add_argument("--runs", type=int, default=5)
    sub.add_parser("deployrun").add_argument("--runs", type=int, default=5)
    sub.add_parser("profile").add_argument("--runs", type=int, default=3)
    con = sub.add_parser("concurrent")
    con.add_argument("--releases", type=int, default=50)
    con.add_argument("--modes", default="threads,cli",
                     help="comma list of: threads, threads:N (at most N at a time), cli, worker, script")
    con.add_argument("--limit", type=int, default=0, help="threads: at most this many at once (0: all)")
    con.add_argument("--databases", default="sqlite", help="comma list of: sqlite, postgres (the server's database)")
    con.add_argument("--workers", default="1",
                     help="worker mode: comma list of how many greenlight workers share the pool, e.g. 1,3")
    bu = sub.add_parser("burst")
    bu.add_argument("--runs", type=int, default=50, help="flow runs created at once")
    bu.add_argument("--configs", default="", help="comma list (default all): prefect-defaults, server-timeouts, "
                    "greenlight, postgres")
    bu.add_argument("--rounds", type=int, default=1, help="every configuration this many times, in turn")
    sub.add_parser("canary").add_argument("--runs", type=int, default=3)
    jd = sub.add_parser("judge")
    jd.add_argument("--rounds", type=int, default=50)
    jd.add_argument("--repeats", type=int, default=200)
    sc = sub.add_parser("scale")
    sc.add_argument("--runs", type=int, default=1)
    sc.add_argument("--replicas", default="3,30,150", help="comma list of blue's replica counts")
    pl = sub.add_parser("proxylag")
    pl.add_argument("--runs", type=int, default=5)
    pl.add_argument("--rate", type=float, default=100.0, help="ClusterIP requests per second (half new connections)")
    pl.add_argument("--cleanup", choices=["keep", "scale-to-zero", "delete"], help="default: greenlight's")
    pl.add_argument("--scale-down-delay", type=float, help="default: greenlight's (30 s)")
    abp = sub.add_parser("ab")
    abp.add_argument("--a", required=True, help="code directory of version A (the baseline)")
    abp.add_argument("--b", required=True, help="code directory of version B (a prototype)")
    abp.add_argument("--cut", required=True, help="GL_CUT for B")
    abp.add_argument("--runs", type=int, default=4)
    sub.add_parser("pipeline").add_argument("--runs", type=int, default=3)
    sub.add_parser("gateway").add_argument("--runs", type=int, default=5)
    sub.add_parser("window").add_argument("--runs", type=int, default=5)
    sub.add_parser("sweep")
    sub.add_parser("snapshot").add_argument("commit", nargs="?", default="HEAD")
    args = p.parse_args(argv)
    from bench.harness import use_code

    try:
        use_code(args.code)
        if args.what == "switch":
            from bench.switching import run

            out = run(args.runs, tag=args.tag)
        elif args.what == "release":
            from bench.release import run

            out = run(args.runs, tag=args.tag)
        elif args.what == "deployrun":
            from bench.deployrun import run

            out = run(args.runs, tag=args.tag)
        elif args.what == "profile":
            from bench.profiling import run

            out = run(args.runs, tag=args.tag)
        elif args.what == "concurrent":
            from bench.concurrent import run

            out = run(args.releases, modes=args.modes.split(","), limit=args.limit, tag=args.tag,
                      databases=args.databases.split(","), workers=[int(w) for w in args.workers.split(",")])
        elif args.what == "burst":
            from bench.burst import run

            out = run(args.runs, [c for c in args.configs.split(",") if c], args.rounds, tag=args.tag)
        elif args.what == "canary":
            from bench.canary import run

            out = run(args.runs, tag=args.tag)
        elif args.what == "judge":
            from bench.judge import run

            out = run(args.rounds, args.repeats, tag=args.tag)
        elif args.what == "scale":
            from bench.scale import run

            out = run(args.runs, tuple(int(n) for n in args.replicas.split(",")), tag=args.tag)
        elif args.what == "proxylag":
            from bench.proxylag import run

            out = run(args.runs, args.rate, args.cleanup, args.scale_down_delay, tag=args.tag)
        elif args.what == "ab":
            from bench.release import ab

            out = ab(args.runs, args.a, args.b, args.cut, tag=args.tag)
        elif args.what == "pipeline":
            from bench.pipeline import run

            out = run(args.runs, tag=args.tag)
        elif args.what == "window":
            from bench.window import run

            out = run(args.runs, tag=args.tag)
        elif args.what == "gateway":
            from bench.gateway_settle import run

            out = run(args.runs, tag=args.tag)
        elif args.what == "snapshot":
            from bench.harness import snapshot

            out = {"code": str(snapshot(args.commit))}
        else:
            from bench.harness import sweep_stale

            out = {"deleted": sweep_stale()}
    except BenchError as exc:
        print(f"BENCH FAILED: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
