"""P5's "one process, many releases": run blue_green_release for every namespace of a job file concurrently in
threads of this one process (each call is its own top-level Prefect flow run), at most `limit` at a time.

    python -m bench.driver JOBS.json OUT.json

JOBS.json: {"namespaces": [...] or "targets": [[namespace, service], ...], "limit": 0, "kubeconfig": "...",
"manifest": "green.yaml", "spec": {extra spec fields}, "dry_run": false}; each release is started through
tasks/prefect_adapter/starting.py (retried while the server keeps it from starting). OUT.json gets per release
start/end (wall clock), outcome or error, and this process's import time and peak RSS.
"""

import time

T0 = time.time()

import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402


def release(namespace: str, kubeconfig: str, manifest: dict, extra: dict, service: str = "production-svc",
            dry_run: bool = False) -> dict:
    from prefect_greenlight.flows.blue_green import blue_green_release
    from prefect_greenlight.tasks.prefect_adapter.starting import start_release
    from prefect_greenlight.tasks.spec import BlueGreenSpec

    start = time.time()
    try:
        spec = BlueGreenSpec(namespace=namespace, service=service, manifest=manifest,
                             cleanup={"mode": "keep"}, **extra)
        result = start_release(blue_green_release, {"spec": spec, "kubeconfig": kubeconfig, "dry_run": dry_run})
        return {"namespace": namespace, "service": service, "start": start, "end": time.time(), "outcome": result["outcome"],
                "live": result["live_deployment"]}
    except BaseException as exc:  # noqa: BLE001 - reported per release; the orchestrator fails loudly
        return {"namespace": namespace, "start": start, "end": time.time(), "outcome": "error",
                "error": f"{type(exc).__name__}: {exc}"[:2000]}


def main(jobs_path: str, out_path: str) -> int:
    import yaml

    from prefect_greenlight.tasks.prefect_adapter.starting import client_retry_defaults

    client_retry_defaults()  # before Prefect is imported

    jobs = json.load(open(jobs_path))
    manifest = yaml.safe_load(open(jobs["manifest"]))
    import prefect_greenlight.flows.blue_green  # noqa: F401 - import once, before the clock of the releases starts
    imported = time.time()
    # one release per namespace (production-svc), or per (namespace, service) pair in "targets"
    targets = jobs.get("targets") or [[ns, "production-svc"] for ns in jobs["namespaces"]]
    with ThreadPoolExecutor(max_workers=jobs.get("limit") or len(targets)) as pool:
        results = list(pool.map(lambda t: release(t[0], jobs["kubeconfig"], manifest, jobs.get("spec") or {}, t[1],
                                                  bool(jobs.get("dry_run"))), targets))
    done = time.time()
    json.dump({"started": T0, "imported": imported, "done": done, "results": results,
               "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, open(out_path, "w"))
    wanted = "dry-run" if jobs.get("dry_run") else "released"
    return 0 if all(r["outcome"] == wanted for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
