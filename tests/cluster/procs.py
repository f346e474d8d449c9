"""Paths and process bookkeeping of the local test cluster, shared by the launcher and the network plane.

Every process is started with its cwd in the state directory and its PID in <state>/pids/<name>.pid; `ours(pid)`
(the cwd check) keeps a reused PID from being signalled by mistake.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HACK = ROOT / "hack" / "cluster"
CACHE = Path(os.environ.get("GREENLIGHT_CACHE", ROOT / ".cache"))
STATE = Path(os.environ.get("GREENLIGHT_CLUSTER_DIR", CACHE / "cluster"))
NODE_NAME = "kwok-node-0"
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"


def log(msg: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------- processes
def start(name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
    with open(STATE / "logs" / f"{name}.log", "ab") as logf:
        proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=STATE, start_new_session=True, env={**os.environ, **(env or {})})
    (STATE / "pids" / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def pids() -> dict[str, int]:
    pid_dir = STATE / "pids"
    if not pid_dir.is_dir():
        return {}
    return {p.stem: int(p.read_text()) for p in pid_dir.glob("*.pid")}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive; a PID reused by something else is not ours.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def ours(pid: int) -> bool:
    """True when the PID still belongs to a process we started (its cwd is our state dir)."""
    try:
        return Path(f"/proc/{pid}/cwd").resolve() == STATE.resolve()
    except OSError:
        return False


def wait_until(what: str, check, timeout: float, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s (last error: {last}); logs in {STATE / 'logs'}")


def _https_ok(url: str, pki: Path) -> bool:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
        return resp.status == 200


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status == 200
