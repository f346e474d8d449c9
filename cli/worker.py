"""`greenlight worker --pool P [--limit N] [--name NAME] [-q QUEUE] [--with-healthcheck]`: the greenlight worker type
(worker/) on pool P, the same as `prefect worker start --pool P --type greenlight`. Either way the first SIGTERM or
Ctrl-C stops polling and gives running releases SHUTDOWN_GRACE_S to end (then hands them over, worker/worker.py); a
second one exits at once. `--with-healthcheck` serves Prefect's worker health endpoint, `GET /health` on
PREFECT_WORKER_WEBSERVER_HOST:PORT (0.0.0.0:8080 by default): 200 while the worker polls its pool, 503 once it
has not for 30 poll intervals (deployments/worker.yaml's liveness and readiness probes)."""

from __future__ import annotations

import argparse
import asyncio

from prefect_greenlight.tasks.errors import BadInput


def add_parser(sub) -> None:
    w = sub.add_parser("worker", help="run releases from a Prefect work pool in threads of this process")
    w.add_argument("-p", "--pool", required=True, help="work pool (created with type greenlight if missing)")
    w.add_argument("--name", help="worker name shown in the UI (default: generated)")
    w.add_argument("--limit", type=int, help="most releases at once (default: GREENLIGHT_WORKER_LIMIT, 20)")
    w.add_argument("-q", "--work-queue", action="append", dest="work_queues", help="poll only this queue")
    w.add_argument("--with-healthcheck", action="store_true",
                   help="serve GET /health on PREFECT_WORKER_WEBSERVER_PORT (8080): 200 while the worker polls")


def cmd_worker(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise BadInput(f"--limit {args.limit}: must be at least 1")
    # lazy: Prefect (≈ 1.7 s) reads its settings once, after entry() sets them
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise BadInput("a worker needs a Prefect server: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api)")
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    # lazy: Prefect (≈ 1.7 s) reads its settings once, after entry() sets them
    from prefect_greenlight.worker.worker import GreenlightWorker

    worker = GreenlightWorker(work_pool_name=args.pool, name=args.name, limit=args.limit,
                              work_queues=args.work_queues)
    await worker.start(printer=lambda *a, **_: print(*a, flush=True),  # the worker handles SIGTERM/SIGINT
                       with_healthcheck=bool(getattr(args, "with_healthcheck", False)))
    return 0
