"""`make test` runs its files on two pytest-xdist workers (`--dist loadfile`: a file never splits). Each worker is
a session of its own, with its own local cluster, network namespace and Prefect server: a test that restarts its
apiserver (test_faults) or sends 50 releases at once (test_no_lost_release) disturbs only its own worker's
cluster, and no test shares a namespace, a port or a server with the other worker's tests.

- gw0 (and a run without xdist) keeps the usual state directory, so `make cluster` + GREENLIGHT_KEEP_CLUSTER=1
  still reuse a running cluster; gw1 and up get `<dir>-gwN`. Set before tests.cluster is imported: its state
  directory is read once, at import.
- The files that take longest are handed out first, so the two workers finish close together.
"""

from __future__ import annotations

import os
from pathlib import Path

# The e2e files that take longest (junit times of a full serial `make test`, README "Measured"), longest first.
# Every other file follows in collection order; unit files last (they fill the gaps at the end).
SLOW_FIRST = (  # seconds in the serial run of a90f2b0, quiet machine: 379, 188, 157, 142, 113, 110, 105, ...
    "tests/e2e/test_faults.py",
    "tests/e2e/test_blue_green.py",
    "tests/e2e/test_pipeline.py",
    "tests/e2e/test_hooks.py",
    "tests/e2e/test_canary.py",
    "tests/e2e/test_scale_down_delay.py",
    "tests/e2e/test_prefect_ops.py",
    "tests/e2e/test_workloads.py",
    "tests/e2e/test_greenlight_worker.py",
    "tests/e2e/test_repeat_canary.py",
    "tests/e2e/test_repeat.py",
    "tests/e2e/test_plan.py",
    "tests/e2e/test_bad_input.py",
    "tests/e2e/test_cancel.py",
    "tests/e2e/test_rbac.py",
    "tests/e2e/test_platform.py",
    "tests/e2e/test_data_path.py",
    "tests/e2e/test_ui_approval.py",
    "tests/e2e/test_api_auth.py",
)


def cluster_dir(worker: str | None, env: dict[str, str], root: Path) -> str | None:
    """The state directory a worker's local cluster uses, or None to keep the default (no xdist, or gw0). The
    default is tests/cluster/procs.py's STATE, derived here alike: importing procs would fix it before this runs."""
    if not worker or worker == "gw0":
        return None
    base = env.get("GREENLIGHT_CLUSTER_DIR") or str(Path(env.get("GREENLIGHT_CACHE") or root / ".cache") / "cluster")
    return f"{base}-{worker}"


def one_cluster_per_worker(root: Path) -> None:
    """Point this worker's cluster at its own state directory; GREENLIGHT_NETNS (what `make cluster` printed)
    names gw0's network namespace, so it is dropped for the others."""
    state = cluster_dir(os.environ.get("PYTEST_XDIST_WORKER"), dict(os.environ), root)
    if state is not None:
        os.environ["GREENLIGHT_CLUSTER_DIR"] = state
        os.environ.pop("GREENLIGHT_NETNS", None)


def worker_suffix() -> str:
    """'' without xdist, '-gw1' etc. under it: for log files every worker would otherwise share."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return f"-{worker}" if worker else ""


def file_rank(path: str) -> tuple[int, int]:
    """Sort key of a test file (its path relative to the repository): the slow e2e files in SLOW_FIRST order,
    then the other e2e files, then unit files."""
    if path in SLOW_FIRST:
        return (0, SLOW_FIRST.index(path))
    return (1, 0) if path.startswith("tests/e2e/") else (2, 0)
