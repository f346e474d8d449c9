"""What every benchmark stands on: the shared local cluster (never started or stopped here unless it is down),
a Prefect server of our own, throw-away `bench-` namespaces, and a per-namespace ServiceAccount whose user name
makes its requests countable in the apiserver's audit log.

Nothing here imports Prefect: the server must be up and PREFECT_API_URL set before Prefect is first imported
(it captures its settings at import).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
# The interpreter the CLI runs in: .venv (the newest Prefect), or e.g. .venv-lowest to measure code that predates
# the newest kubernetes client (GREENLIGHT_BENCH_PYTHON=.venv-lowest/bin/python).
PYTHON = os.environ.get("GREENLIGHT_BENCH_PYTHON") or str(ROOT / ".venv" / "bin" / "python")
# The cluster the launcher runs: GREENLIGHT_CACHE / GREENLIGHT_CLUSTER_DIR as in tests/cluster/procs.py.
CACHE = Path(os.environ.get("GREENLIGHT_CACHE", ROOT / ".cache"))
STATE = Path(os.environ.get("GREENLIGHT_CLUSTER_DIR", CACHE / "cluster"))
KUBECTL = str(CACHE / "bin" / "kubernetes-v1.34.4" / "kubectl")
KUBECONFIG = str(STATE / "kubeconfig")
AUDIT_DIR = STATE / "logs"
TUTORIAL1 = ROOT / "examples" / "tutorial1"
TUTORIAL2 = ROOT / "examples" / "tutorial2"
BENCH_SA = "bench"
# Prefect's SDK telemetry (Amplitude) stays off: benchmarks talk to 127.0.0.1 only. Inherited by every child.
os.environ["DO_NOT_TRACK"] = "1"


# The greenlight code under measurement: the working tree by default, or a directory holding the import package
# `prefect_greenlight/{flows,tasks,cli}` (a `git archive` of one commit, or a scratch copy with a prototyped cut):
# see use_code(). prefect_greenlight is a namespace package, so a directory first on sys.path is found before the
# editable install's finder.
CODE = ROOT


def use_code(path: str | None) -> Path:
    """Measure the greenlight code in `path` (children get it first on PYTHONPATH and as their working directory;
    this process imports `prefect_greenlight.*` from it too)."""
    global CODE
    if path:
        CODE = Path(path).resolve()
        check((CODE / "prefect_greenlight" / "cli" / "main.py").exists(),
              f"{CODE} holds no prefect_greenlight/cli/main.py")
        sys.path.insert(0, str(CODE))
    return CODE


def snapshot(commit: str = "HEAD") -> Path:
    """flows/, tasks/ and cli/ of `commit` as /tmp/greenlight-<sha>/prefect_greenlight/, examples/ beside them
    (+ a COMMIT file): stable code to measure while others edit the working tree."""
    sha = subprocess.run(["git", "rev-parse", "--short", commit], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    out = Path(tempfile.gettempdir()) / f"greenlight-{sha}"
    if not (out / "COMMIT").exists():
        (out / "prefect_greenlight").mkdir(parents=True, exist_ok=True)
        for part, dest in (("flows tasks cli", out / "prefect_greenlight"), ("examples", out)):
            archive = subprocess.run(["git", "archive", sha, *part.split()], cwd=ROOT, check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        (out / "COMMIT").write_text(f"commit {sha}\n")
    return out


def code_version() -> str:
    """Which code was measured: the commit and whether flows/ or tasks/ differ from it (working tree only)."""
    if CODE != ROOT:
        marker = CODE / "COMMIT"
        return f"{CODE} ({marker.read_text().strip() if marker.exists() else 'not a git archive'})"
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain", "flows", "tasks", "cli"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return f"working tree at {head.strip()}" + (" with uncommitted changes in flows/, tasks/ or cli/" if dirty else "")


class BenchError(RuntimeError):
    """What was measured did not really happen (or the harness could not set it up): the run is void."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise BenchError(message)


def load() -> str:
    """`uptime`'s load averages: the machine has 2 cores shared with other engineers' test runs."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------------- cluster
def ensure_cluster() -> None:
    """Use the shared cluster; start it only when it is down (never stop or restart it)."""
    from tests.cluster import launcher

    if not launcher.status()["up"]:
        subprocess.run([PYTHON, "-m", "tests.cluster.launcher", "up"], cwd=ROOT, check=True, timeout=600)
    check(Path(KUBECTL).exists(), f"missing {KUBECTL}")


def kube(kubeconfig: str = KUBECONFIG):
    from prefect_greenlight.tasks.kube.client import connect

    return connect(kubeconfig)


def kubectl(namespace: str, *args: str, kubeconfig: str = KUBECONFIG, timeout: float = 60) -> str:
    proc = subprocess.run([KUBECTL, f"--kubeconfig={kubeconfig}", "-n", namespace, *args], capture_output=True,
                          text=True, timeout=timeout)
    check(proc.returncode == 0, f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


# ------------------------------------------------------------------------------------------------ namespaces
_CREATED: set[str] = set()


def _delete_all() -> None:
    if not _CREATED:
        return
    k = kube()
    for ns in sorted(_CREATED):
        try:
            k.core.delete_namespace(ns, propagation_policy="Background", _request_timeout=(5, 10))
        except Exception:  # noqa: BLE001 - already gone
            pass
    _CREATED.clear()


atexit.register(_delete_all)


def create_namespace(prefix: str) -> str:
    """A fresh `bench-<prefix>-<random>` namespace, ready for pods (its default ServiceAccount exists)."""
    name = f"bench-{prefix}-{uuid.uuid4().hex[:5]}"[:63]
    k = kube()
    k.core.create_namespace({"metadata": {"name": name, "labels": {"greenlight-bench": "true"}}})
    _CREATED.add(name)
    deadline = time.monotonic() + 30
    while not k.core.list_namespaced_service_account(name).items:
        check(time.monotonic() < deadline, f"namespace {name}: no default ServiceAccount after 30 s")
        time.sleep(0.1)
    return name


def delete_namespaces(*names: str, wait_s: float = 120) -> None:
    """Delete and wait until they are gone, so the next measurement does not share the cluster with the
    namespace controller's clean-up."""
    k = kube()
    for ns in names:
        try:
            k.core.delete_namespace(ns, propagation_policy="Background", _request_timeout=(5, 10))
        except Exception:  # noqa: BLE001
            pass
        _CREATED.discard(ns)
    deadline = time.monotonic() + wait_s
    left = set(names)
    while left and time.monotonic() < deadline:
        present = {n.metadata.name for n in k.core.list_namespace(label_selector="greenlight-bench=true").items}
        left &= present
        if left:
            time.sleep(0.5)


def delete_created(wait_s: float = 120) -> None:
    """Delete every namespace this process created (and wait until they are gone)."""
    delete_namespaces(*sorted(_CREATED), wait_s=wait_s)


def sweep_stale() -> list[str]:
    """Namespaces an interrupted earlier bench run left behind (label greenlight-bench=true)."""
    k = kube()
    stale = [n.metadata.name for n in k.core.list_namespace(label_selector="greenlight-bench=true").items
             if n.metadata.name.startswith("bench-") and not n.metadata.deletion_timestamp]
    if stale:
        delete_namespaces(*stale)
    return stale


def service_account_kubeconfig(namespace: str, workdir: Path) -> tuple[str, str]:
    """A kubeconfig holding only the token of ServiceAccount `bench` of `namespace`, bound to cluster-admin in
    that namespace only. Returns (path, audit user name): every request made with it carries that user name in
    the audit log, so greenlight's and the script's requests are counted exactly, whatever else runs."""
    k = kube()
    k.core.create_namespaced_service_account(namespace, {"metadata": {"name": BENCH_SA}})
    from kubernetes import client

    client.RbacAuthorizationV1Api(k.api).create_namespaced_role_binding(namespace, {
        "metadata": {"name": "bench-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": BENCH_SA, "namespace": namespace}]})
    token = k.core.create_namespaced_service_account_token(
        BENCH_SA, namespace, {"spec": {"expirationSeconds": 7200}}).status.token
    admin = yaml.safe_load(Path(KUBECONFIG).read_text())
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "bench", "clusters": admin["clusters"],
           "users": [{"name": "bench", "user": {"token": token}}],
           "contexts": [{"name": "bench", "context": {"cluster": admin["clusters"][0]["name"], "user": "bench",
                                                      "namespace": namespace}}]}
    path = workdir / f"{namespace}.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return str(path), f"system:serviceaccount:{namespace}:{BENCH_SA}"


# ------------------------------------------------------------------------------------------- Prefect server
@contextmanager
def postgres(timeout_s: float = 60):
    """A throw-away PostgreSQL (initdb/pg_ctl on PATH, else Debian's: hack/postgres.sh) on a free 127.0.0.1 port,
    run as the `postgres` user (initdb refuses root), trust auth; yields the SQLAlchemy URL of its `postgres` database. Stopped at the end."""
    data = Path(tempfile.mkdtemp(prefix="greenlight-bench-pg-"))
    shutil.chown(data, "postgres", "postgres")
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    bin_dir = "" if shutil.which("initdb") or not debian else f"{debian[-1].parent}/"
    port = free_port()
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_pg, f"{bin_dir}initdb", "-D", str(data / "db"), "--auth=trust", "-U", "postgres"],
                   check=True, capture_output=True, timeout=120)
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off"
    subprocess.run([*as_pg, f"{bin_dir}pg_ctl", "-D", str(data / "db"), "-l", str(data / "pg.log"), "-w", "-t",
                    str(int(timeout_s)), "-o", options, "start"], check=True, capture_output=True,
                   timeout=timeout_s + 10)
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_pg, f"{bin_dir}pg_ctl", "-D", str(data / "db"), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(data, ignore_errors=True)


@dataclass
class PrefectServer:
    url: str
    home: str
    pid: int
    database: str


@contextmanager
def prefect_server(database: str = "sqlite", timeout_s: float = 120, settings: dict[str, str] | None = None):
    """`prefect server start` on a free 127.0.0.1 port with a throw-away PREFECT_HOME, as the `prefect_api` test
    fixture does (SQLite; or `database="postgres"`: a throw-away PostgreSQL). PREFECT_API_URL/PREFECT_HOME are
    exported for this process and its children while it runs. Retryable database errors (SQLite's "database is
    locked", answered 503) are logged to server.log so P5 can count them. `settings`: Prefect settings for the
    server's environment on top (bench/burst.py). Stopped by its PID at the end."""
    with contextlib.ExitStack() as stack:
        db_url = stack.enter_context(postgres()) if database == "postgres" else ""
        yield stack.enter_context(_prefect_server(database, db_url, timeout_s, settings or {}))


@contextmanager
def _prefect_server(database: str, db_url: str, timeout_s: float, settings: dict[str, str]):
    home = tempfile.mkdtemp(prefix="greenlight-bench-prefect-")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": home, "PREFECT_API_URL": url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_API_URL": url, "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port),
           "PREFECT_API_LOG_RETRYABLE_ERRORS": "true",
           **({"PREFECT_API_DATABASE_CONNECTION_URL": db_url} if db_url else {}), **settings}
    log = open(Path(home) / "server.log", "wb")
    proc = subprocess.Popen([PYTHON, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            check(proc.poll() is None and time.monotonic() < deadline,
                  f"Prefect server did not start: see {home}/server.log")
            time.sleep(0.3)
        saved = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "PREFECT_HOME",
                                                 "PREFECT_SERVER_ANALYTICS_ENABLED")}
        os.environ.update(PREFECT_API_URL=url, PREFECT_HOME=home, PREFECT_SERVER_ANALYTICS_ENABLED="false")
        try:
            yield PrefectServer(url, home, proc.pid, database)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def child_env(**extra: str) -> dict[str, str]:
    """Environment for greenlight CLI children: this process's (PREFECT_API_URL included), the measured code first
    on the path, then the repository (for bench.probe)."""
    return {**os.environ, "KUBECONFIG": KUBECONFIG, "PYTHONPATH": f"{CODE}:{ROOT}", "PREFECT_LOGGING_LEVEL": "INFO",
            **extra}


def python_version() -> str:
    return sys.version.split()[0]
