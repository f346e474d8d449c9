"""P5's "one process, many releases": run blue_green_release for every namespace of a job file concurrently in
threads of this one process (each call is its own top-level Prefect flow run), at most `limit` at a time.

    python -m bench.driver JOBS.json OUT.json

JOBS.json: {"namespaces": [...], "limit": 0, "kubeconfig": "...", "manifest": "green.yaml", "spec": {extra spec
fields}}; OUT.json gets per release start/end (wall
clock), outcome or error, and this process's import time and peak RSS.
"""

import time

T0 = time.time()

import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402


def release(namespace: str, kubeconfig: str, manifest: dict, extra: dict) -> dict:
    from prefect_greenlight.flows.blue_green import blue_green_release
    from prefect_greenlight.tasks.spec import BlueGreenSpec

    start = time.time()
    try:
        spec = BlueGreenSpec(namespace=namespace, service="production-svc", manifest=manifest,
                             cleanup={"mode": "keep"}, **extra)
        result = blue_green_release(spec=spec, kubeconfig=kubeconfig)
        return {"namespace": namespace, "start": start, "end": time.time(), "outcome": result["outcome"],
                "live": result["live_deployment"]}
    except BaseException as exc:  # noqa: BLE001 - reported per release; the orchestrator fails loudly
        return {"namespace": namespace, "start": start, "end": time.time(), "outcome": "error",
                "error": f"{type(exc).__name__}: {exc}"[:2000]}


def main(jobs_path: str, out_path: str) -> int:
    import yaml

    jobs = json.load(open(jobs_path))
    manifest = yaml.safe_load(open(jobs["manifest"]))
    import prefect_greenlight.flows.blue_green  # noqa: F401 - import once, before the clock of the releases starts
    imported = time.time()
    namespaces = jobs["namespaces"]
    with ThreadPoolExecutor(max_workers=jobs.get("limit") or len(namespaces)) as pool:
        results = list(pool.map(lambda ns: release(ns, jobs["kubeconfig"], manifest, jobs.get("spec") or {}),
                                namespaces))
    done = time.time()
    json.dump({"started": T0, "imported": imported, "done": done, "results": results,
               "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, open(out_path, "w"))
    return 0 if all(r["outcome"] == "released" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
