"""Several local clusters side by side (issue 16: promotion pipelines across clusters), and one kubeconfig with a
context per cluster.

    python -m tests.cluster.multi up --clusters 3      # staging, prod-a, prod-b; idempotent per cluster
    python -m tests.cluster.multi down                 # stops every cluster under the base directory
    python -m tests.cluster.multi status

Each cluster is the launcher's (tests/cluster/launcher.py) with a state directory of its own,
<base>/<name>, given as GREENLIGHT_CLUSTER_DIR to a launcher subprocess. Everything else follows from that
directory: free ports, PKI, PID files and the network namespace `gl-<hash of the directory>`. Pods of every
cluster use the same 10.244.0.0/24 and Services the same 10.96.0.0/16, which is fine: each cluster's data path
lives in its own namespace and no 10.0.0.0/8 address is routed or reached from the root namespace.

The base directory is GREENLIGHT_CLUSTERS_DIR, default <cache>/clusters. The merged kubeconfig is
<base>/kubeconfig (contexts named after the clusters, current context the first); `clusters.json` beside it
records each cluster's kubeconfig, network namespace, start time and memory (RSS and PSS).
"""

from __future__ import annotations

import argparse
import json
import os
import string
import subprocess
import sys
import time
from pathlib import Path

from tests.cluster.procs import CACHE, ROOT, log

BASE = Path(os.environ.get("GREENLIGHT_CLUSTERS_DIR", CACHE / "clusters"))


def cluster_names(count: int) -> list[str]:
    """staging, prod-a, prod-b, ...: the first cluster stages, the others are production regions."""
    if count < 1 or count > 27:
        raise SystemExit(f"--clusters must be between 1 and 27, not {count}")
    return ["staging", *(f"prod-{c}" for c in string.ascii_lowercase[:count - 1])]


def _launcher(name: str, command: str, base: Path = BASE) -> subprocess.CompletedProcess:
    env = {**os.environ, "GREENLIGHT_CLUSTER_DIR": str(base / name), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tests.cluster.launcher", command], check=False, env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def memory_mib(pid_dir: Path) -> dict[str, float]:
    """Memory of one cluster's processes (every PID file in its state directory), in MiB: `rss` (resident, each
    process counted whole) and `pss` (shared pages split between the processes sharing them: what one more
    cluster really costs, since the clusters run the same binaries)."""
    totals = {"rss": 0, "pss": 0}
    for pid_file in pid_dir.glob("*.pid"):
        try:
            rollup = Path(f"/proc/{int(pid_file.read_text())}/smaps_rollup").read_text()
        except (OSError, ValueError):
            continue
        for line in rollup.splitlines():
            key = line.split(":")[0].lower()
            if key in totals:
                totals[key] += int(line.split()[1])
    return {k: round(v / 1024, 1) for k, v in totals.items()}


def merged_kubeconfig(configs: dict[str, dict]) -> dict:
    """One kubeconfig with a cluster, user and context per name (each launcher writes `greenlight-local`)."""
    merged: dict = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": [],
                    "current-context": next(iter(configs), "")}
    for name, cfg in configs.items():
        merged["clusters"].append({"name": name, "cluster": cfg["clusters"][0]["cluster"]})
        merged["users"].append({"name": f"{name}-admin", "user": cfg["users"][0]["user"]})
        merged["contexts"].append({"name": name, "context": {"cluster": name, "user": f"{name}-admin"}})
    return merged


def up(count: int, base: Path = BASE) -> dict:
    base.mkdir(parents=True, exist_ok=True)
    info: dict = {"clusters": {}}
    configs: dict[str, dict] = {}
    for name in cluster_names(count):
        t0 = time.monotonic()
        proc = _launcher(name, "up", base)
        if proc.returncode != 0:
            raise SystemExit(f"cluster {name} did not start ({proc.returncode}):\n{proc.stderr[-4000:]}")
        state = json.loads((base / name / "cluster.json").read_text())
        configs[name] = json.loads(Path(state["kubeconfig"]).read_text())
        info["clusters"][name] = {"kubeconfig": state["kubeconfig"], "netns": state["netns"],
                                  "server": state["server"], "up_in_s": round(time.monotonic() - t0, 1),
                                  "memory_mib": memory_mib(base / name / "pids")}
        log(f"{name}: up ({info['clusters'][name]['memory_mib']})")
    kubeconfig = base / "kubeconfig"
    kubeconfig.write_text(json.dumps(merged_kubeconfig(configs), indent=2))
    kubeconfig.chmod(0o600)
    info.update(kubeconfig=str(kubeconfig), kubectl=state["kubectl"])
    (base / "clusters.json").write_text(json.dumps(info, indent=2))
    return info


def down(base: Path = BASE) -> None:
    for state in sorted(p for p in base.glob("*") if p.is_dir()):
        proc = _launcher(state.name, "down", base)
        log(f"{state.name}: down" + ("" if proc.returncode == 0 else f" failed: {proc.stderr[-2000:]}"))
    for name in ("kubeconfig", "clusters.json"):
        (base / name).unlink(missing_ok=True)


def status(base: Path = BASE) -> dict:
    out = {}
    for state in sorted(p for p in base.glob("*") if p.is_dir()):
        proc = _launcher(state.name, "status", base)
        current = json.loads(proc.stdout) if proc.returncode == 0 else {"up": False}
        out[state.name] = {"up": current["up"], "memory_mib": memory_mib(state / "pids")}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests.cluster.multi", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--clusters", type=int, default=3)
    args = parser.parse_args(argv)
    if args.command == "up":
        info = up(args.clusters)
        for name, c in info["clusters"].items():
            print(f"# {name}: {c['server']}, network namespace {c['netns']}, memory {c['memory_mib']['pss']} MiB "
                  f"(PSS; RSS {c['memory_mib']['rss']} MiB)")
        print(f"export PATH={Path(info['kubectl']).parent}:$PATH")
        print(f"export KUBECONFIG={info['kubeconfig']}")
    elif args.command == "down":
        down()
    else:
        print(json.dumps(status(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
