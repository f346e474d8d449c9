"""The burst's callers (bench/burst.py): N flow runs of one deployment created at once, each by a Prefect client of
its own (`PrefectClient.create_flow_run_from_deployment`, what `prefect deployment run` and greenlight's worker and
CLI use), in one process whose environment holds the client settings under test (PREFECT_CLIENT_MAX_RETRIES,
PREFECT_CLIENT_RETRY_JITTER_FACTOR: Prefect reads them from the environment).

One client per caller, because one PrefectClient opens at most 16 connections: 50 clients are 50 callers. Every
client is opened (and has made its first request) before the clock starts; then all N calls are released at once.
Every HTTP response to a call is recorded (an httpx response hook, told apart per call by a context variable), so
the 503s Prefect's client retried internally are counted too.

    python -m bench.burst_client API_URL DEPLOYMENT_ID N PARAMS_JSON OUT_JSON
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import sys
import time
from pathlib import Path
from uuid import UUID

CALL: contextvars.ContextVar[int] = contextvars.ContextVar("burst_call", default=-1)


async def burst(deployment_id: str, n: int, params: list[dict]) -> dict:
    from prefect.client.orchestration import get_client

    statuses: list[list[int]] = [[] for _ in range(n)]

    async def record(response) -> None:
        call = CALL.get()
        if call >= 0 and response.request.url.path.endswith("/create_flow_run"):
            statuses[call].append(response.status_code)

    clients = [get_client(httpx_settings={"event_hooks": {"response": [record]}}) for _ in range(n)]
    for client in clients:
        await client.__aenter__()
    await asyncio.gather(*(c.api_healthcheck() for c in clients))  # connections open before the clock
    start = asyncio.Event()
    results: list[dict] = [{} for _ in range(n)]

    async def one(i: int) -> None:
        CALL.set(i)
        await start.wait()
        t0 = time.perf_counter()
        try:
            run = await clients[i].create_flow_run_from_deployment(UUID(deployment_id), parameters=params[i],
                                                                   tags=["burst"])
            results[i] = {"created": True, "id": str(run.id)}
        except Exception as exc:  # noqa: BLE001 - a refused call is a figure, not a bench failure
            results[i] = {"created": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        results[i].update(latency_s=round(time.perf_counter() - t0, 3), statuses=statuses[i])

    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    await asyncio.sleep(0.2)  # every task waits on the event
    t0 = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    for client in clients:
        await client.__aexit__(None, None, None)
    return {"wall_s": round(wall, 3), "calls": results}


def main(argv: list[str]) -> int:
    api, deployment_id, n, params_file, out = argv
    del api  # PREFECT_API_URL is in the environment (Prefect reads it at import)
    params = json.loads(Path(params_file).read_text())
    data = asyncio.run(burst(deployment_id, int(n), params))
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, PREFECT_CLIENT_RETRY_JITTER_FACTOR

    data["client_settings"] = {"PREFECT_CLIENT_MAX_RETRIES": PREFECT_CLIENT_MAX_RETRIES.value(),
                               "PREFECT_CLIENT_RETRY_JITTER_FACTOR": PREFECT_CLIENT_RETRY_JITTER_FACTOR.value()}
    Path(out).write_text(json.dumps(data))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
