"""`greenlight worker --pool P [--limit N] [--name NAME] [-q QUEUE]`: the greenlight worker type (worker/) on pool P,
the same as `prefect worker start --pool P --type greenlight`, with greenlight's shutdown: the first SIGTERM or
Ctrl-C stops polling and gives running releases SHUTDOWN_GRACE_S to end (then hands them over, worker/worker.py);
a second one exits at once."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from prefect_greenlight.tasks.errors import BadInput


def add_parser(sub) -> None:
    w = sub.add_parser("worker", help="run releases from a Prefect work pool in threads of this process")
    w.add_argument("-p", "--pool", required=True, help="work pool (created with type greenlight if missing)")
    w.add_argument("--name", help="worker name shown in the UI (default: generated)")
    w.add_argument("--limit", type=int, help="most releases at once (default: GREENLIGHT_WORKER_LIMIT, 20)")
    w.add_argument("-q", "--work-queue", action="append", dest="work_queues", help="poll only this queue")


def cmd_worker(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise BadInput(f"--limit {args.limit}: must be at least 1")
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise BadInput("a worker needs a Prefect server: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api)")
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    from prefect_greenlight.worker.worker import SHUTDOWN_GRACE_S, GreenlightWorker

    worker = GreenlightWorker(work_pool_name=args.pool, name=args.name, limit=args.limit,
                              work_queues=args.work_queues)
    main = asyncio.current_task()
    signals = []

    def stop() -> None:
        signals.append(True)
        if len(signals) > 1:
            print("greenlight worker: second signal, exiting now", file=sys.stderr, flush=True)
            os._exit(130)
        print(f"greenlight worker: stopping; running releases get {SHUTDOWN_GRACE_S:.0f} s to end, then are "
              "handed over", file=sys.stderr, flush=True)
        main.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    try:
        await worker.start(printer=lambda *a, **_: print(*a, flush=True))
    except asyncio.CancelledError:
        if not signals:
            raise
    return 0
