"""Real traffic through a Service ClusterIP during a scenario, like the EndpointSampler but end to end.

An agent process (tests/cluster/traffic_agent.py) runs INSIDE the local cluster's network namespace and sends
steady GETs to the Service's ClusterIP:port, through kube-proxy's nftables rules to the pod-IP server. Every
request is recorded: when it was sent (wall clock, comparable with time.time()), which pod answered and with
which image/colour, the status, the error.

    with TrafficCheck(netns, cluster.kubeconfig, ns, "prod", 80) as traffic:
        ... release ...
        switched = time.time()
    result = traffic.result
    assert not result.failed(), result.summary()
    assert not traffic.forbid("blue-dep", after=switched + delay)   # counted in the session's tally

Nothing here may send a packet from the root namespace: the agent always runs under `ip netns exec`.
Only the standard library and the kubernetes client (to read the Service's ClusterIP) are used.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
__all__ = ["Request", "ShareCheck", "TrafficCheck", "TrafficResult", "Window", "TALLY", "Tally", "netns_get"]
# What a version is, by key: the Deployment (pod name minus its ReplicaSet hash and suffix), image, colour, pod.
KEYS = ("deployment", "image", "color", "pod")


# ------------------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class Request:
    t: float  # wall clock when it was sent
    latency_s: float
    conn: str  # "new" (a connection of its own) or "ka" (a reused keep-alive connection)
    cid: int
    status: int  # 0: no answer
    pod: str
    image: str
    color: str
    error: str
    body: str = ""  # only from netns_get

    @classmethod
    def from_record(cls, rec: dict) -> "Request":
        return cls(rec["t"], rec.get("lat", 0.0), rec["conn"], rec["cid"], rec["status"], rec["pod"],
                   rec["image"], rec["color"], rec["err"], rec.get("body", ""))

    @property
    def failed(self) -> bool:
        """A connection error, a timeout, or a 5xx."""
        return bool(self.error) or self.status >= 500 or not self.status

    @property
    def deployment(self) -> str:
        """The Deployment of a pod named <deployment>-<ReplicaSet hash>-<suffix> (a bare pod: its name)."""
        parts = self.pod.rsplit("-", 2)
        return parts[0] if len(parts) == 3 else self.pod

    def version(self, key: str = "deployment") -> str:
        if key not in KEYS:
            raise ValueError(f"key {key!r} is none of {KEYS}")
        return getattr(self, key)


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    counts: dict[str, int]  # version -> answers

    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class ShareCheck:
    """Observed share of `version` among independent draws (requests on new connections) against the expected
    share, with a binomial tolerance of z standard deviations: z * sqrt(p (1 - p) / n)."""

    version: str
    expected: float
    hits: int
    n: int
    z: float

    @property
    def observed(self) -> float:
        return self.hits / self.n if self.n else float("nan")

    @property
    def tolerance(self) -> float:
        return self.z * math.sqrt(self.expected * (1 - self.expected) / self.n) if self.n else float("inf")

    @property
    def ok(self) -> bool:
        return self.n > 0 and abs(self.observed - self.expected) <= self.tolerance

    def describe(self) -> str:
        return (f"{self.version}: {self.hits} of {self.n} answers = {self.observed:.3f}, expected "
                f"{self.expected:.3f} +/- {self.tolerance:.3f} ({self.z:g} standard deviations)")


@dataclass(frozen=True)
class TrafficResult:
    requests: tuple[Request, ...]
    target: str
    started: float
    ended: float
    skipped: int = 0  # new-connection slots skipped because every worker was busy (hanging requests)
    agent_errors: str = ""
    stopped_early: bool = False  # the agent reached its bound (duration_s / max_requests) before the block ended
    warmup: int = 0  # requests sent before the first answer, left out (see TrafficCheck.snapshot)

    def _in(self, start: float | None, end: float | None) -> list[Request]:
        lo, hi = start if start is not None else -math.inf, end if end is not None else math.inf
        return [r for r in self.requests if lo <= r.t < hi]

    def sent(self) -> int:
        return len(self.requests)

    def failed(self, start: float | None = None, end: float | None = None, ignore_5xx_from: tuple[str, ...] = (),
               key: str = "deployment") -> list[Request]:
        """Connection errors, timeouts and 5xx sent in [start, end); 5xx answers from the versions in
        `ignore_5xx_from` (known to be unhealthy) are left out."""
        return [r for r in self._in(start, end)
                if r.failed and not (r.status >= 500 and r.version(key) in ignore_5xx_from)]

    def answered(self, start: float | None = None, end: float | None = None) -> list[Request]:
        return [r for r in self._in(start, end) if r.status]

    def pods(self) -> set[str]:
        return {r.pod for r in self.answered() if r.pod}

    def versions(self, key: str = "deployment", start: float | None = None, end: float | None = None
                 ) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.answered(start, end):
            counts[r.version(key)] = counts.get(r.version(key), 0) + 1
        return counts

    def windows(self, width_s: float = 1.0, key: str = "deployment") -> list[Window]:
        """Answers per version in consecutive windows of `width_s` from the first request on."""
        if not self.requests:
            return []
        t0, t_end = self.requests[0].t, max(r.t for r in self.requests)
        count = int((t_end - t0) // width_s) + 1
        return [Window(t0 + i * width_s, t0 + (i + 1) * width_s,
                       self.versions(key, t0 + i * width_s, t0 + (i + 1) * width_s)) for i in range(count)]

    def first_answer(self, version: str, key: str = "deployment", after: float | None = None) -> float | None:
        times = [r.t for r in self.answered(after, None) if r.version(key) == version]
        return min(times) if times else None

    def last_answer(self, version: str, key: str = "deployment", before: float | None = None) -> float | None:
        times = [r.t for r in self.answered(None, before) if r.version(key) == version]
        return max(times) if times else None

    def share(self, version: str, expected: float, start: float | None = None, end: float | None = None,
              key: str = "deployment", z: float = 4.0, conn: str = "new") -> ShareCheck:
        """The share of answers from `version` in [start, end) against `expected`. Counted on `conn="new"`
        requests by default: kube-proxy picks a backend per connection, so only those are independent draws (a
        keep-alive connection's requests all land where its first did). z=4 -> a false alarm about 1 in 16000."""
        answers = [r for r in self.answered(start, end) if conn == "all" or r.conn == conn]
        return ShareCheck(version, expected, sum(1 for r in answers if r.version(key) == version), len(answers), z)

    def rate(self) -> float:
        span = self.requests[-1].t - self.requests[0].t if len(self.requests) > 1 else 0.0
        return (len(self.requests) - 1) / span if span > 0 else 0.0

    def summary(self, key: str = "deployment") -> str:
        new = sum(1 for r in self.requests if r.conn == "new")
        failed = self.failed()
        errors: dict[str, int] = {}
        for r in failed:
            kind = r.error.split(":", 1)[0] if r.error else f"HTTP {r.status}"
            errors[kind] = errors.get(kind, 0) + 1
        by = ", ".join(f"{v}={n}" for v, n in sorted(self.versions(key).items())) or "none"
        return (f"{self.target}: {self.sent()} requests in {self.ended - self.started:.1f} s ({self.rate():.0f}/s; "
                f"{new} on new connections, {self.sent() - new} keep-alive; {self.skipped} slots skipped): "
                f"{len(failed)} failed{' ' + str(errors) if errors else ''}; answers by {key}: {by}"
                + (f"; {self.warmup} sent before the first answer left out" if self.warmup else "")
                + ("; STOPPED EARLY (its duration/count bound)" if self.stopped_early else "")
                + (f"; agent stderr: {self.agent_errors[-300:]}" if self.agent_errors else ""))


# ------------------------------------------------------------------------------------------------ running
@dataclass(frozen=True)
class CheckRecord:
    test: str
    target: str
    sent: int
    failed: int
    expect_failures: bool


@dataclass
class Tally:
    """The session's totals, printed in pytest's terminal summary (tests/e2e/conftest.py)."""

    checks: dict[int, CheckRecord] = field(default_factory=dict)  # check number -> its figures, in run order
    forbidden: dict[int, set[int]] = field(default_factory=dict)  # check number -> indices of forbidden answers

    def lines(self) -> list[str]:
        if not self.checks:
            return ["no ClusterIP traffic check ran in this session"]
        checks = list(self.checks.items())
        sent = sum(c.sent for _, c in checks)
        failed = sum(c.failed for _, c in checks)
        expected = sum(c.failed for _, c in checks if c.expect_failures)
        forbidden = {k: len(self.forbidden.get(k, ())) for k, _ in checks}
        out = [f"ClusterIP traffic: {len(checks)} checks, {sent} requests sent, {failed} failed "
               f"({expected} of them in checks that expect failures), {sum(forbidden.values())} answers from a "
               f"version that should not serve"]
        out += [f"  {c.test}: {c.target}: {c.sent} sent, {c.failed} failed, {forbidden[k]} forbidden answers"
                + (" (failures expected)" if c.expect_failures else "")
                for k, c in checks if c.failed or forbidden[k]]
        return out

    def export(self) -> list[dict]:
        """The checks as plain data, for an xdist worker to hand its totals to the controller."""
        return [{**vars(c), "forbidden": sorted(self.forbidden.get(k, ()))} for k, c in self.checks.items()]

    def merge(self, rows: list[dict]) -> None:
        """Another session's exported checks, numbered after this tally's own."""
        for row in rows:
            number = max(self.checks, default=0) + 1
            self.checks[number] = CheckRecord(**{k: v for k, v in row.items() if k != "forbidden"})
            if row.get("forbidden"):
                self.forbidden[number] = set(row["forbidden"])


TALLY = Tally()
_NUMBERS = itertools.count(1)


def _agent_argv(netns: str, host: str, port: int, options: dict, headers: dict[str, str] | None = None) -> list[str]:
    args = [f"--host={host}", f"--port={port}", *(f"--{k.replace('_', '-')}={v}" for k, v in options.items()),
            *(f"--header={name}:{value}" for name, value in (headers or {}).items())]
    ip = shutil.which("ip") or "/usr/sbin/ip"
    return [ip, "netns", "exec", netns, sys.executable, "-S", "-m", "tests.cluster.traffic_agent", *args]


def _require_netns(netns: str) -> None:
    if not netns or not (Path("/run/netns") / netns).exists():
        raise RuntimeError(f"network namespace {netns!r} does not exist: the traffic agent runs only inside the "
                           "local cluster's namespace (tests.cluster.launcher up creates it)")


def cluster_ip(kubeconfig: str, namespace: str, service: str, port: int | None) -> tuple[str, int]:
    """The Service's ClusterIP and port (its first port when `port` is None)."""
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    svc = api.read_namespaced_service(service, namespace, _request_timeout=(5, 10))
    ip = svc.spec.cluster_ip
    if not ip or ip == "None":
        raise RuntimeError(f"Service {namespace}/{service} has no ClusterIP ({ip!r})")
    ports = [p.port for p in svc.spec.ports or []]
    if port is None:
        if not ports:
            raise RuntimeError(f"Service {namespace}/{service} has no ports")
        port = ports[0]
    elif port not in ports:
        raise RuntimeError(f"Service {namespace}/{service} has no port {port} (ports: {ports})")
    return ip, port


def warm(requests: tuple[Request, ...]) -> tuple[tuple[Request, ...], int]:
    """The requests from the first answered one on, and how many were sent before it. __enter__ returns only once
    an answer came, so what went before is the new Service's warm-up (kube-proxy had not programmed its ClusterIP
    yet: such a request hangs until its timeout), never the work of the release the block then runs."""
    answered = [r.t for r in requests if r.status]
    if not answered:
        return requests, 0
    first = min(answered)
    counted = tuple(r for r in requests if r.t >= first)
    return counted, len(requests) - len(counted)


class TrafficCheck:
    """Context manager: the agent runs from __enter__ (which waits for its first answer) to __exit__ (or until
    it stops by itself after `duration_s` / `max_requests`). `result` is available after __exit__;
    `snapshot()` at any time."""

    def __init__(self, netns: str, kubeconfig: str, namespace: str, service: str, port: int | None = None, *,
                 rate: float = 100.0, duration_s: float = 300.0, max_requests: int | None = None,
                 keepalive_share: float = 0.5, keepalive_conns: int = 4, keepalive_requests: int = 20,
                 timeout_s: float = 2.0, path: str = "/", target: tuple[str, int] | None = None,
                 first_answer_within_s: float | None = 15.0, expect_failures: bool = False,
                 headers: dict[str, str] | None = None):
        self.netns, self.kubeconfig, self.namespace, self.service, self.port = netns, kubeconfig, namespace, \
            service, port
        self.target = target
        self.options = {"rate": rate, "duration": duration_s, "max_requests": max_requests or 0,
                        "keepalive_share": keepalive_share, "keepalive_conns": keepalive_conns,
                        "keepalive_requests": keepalive_requests, "timeout": timeout_s, "path": path}
        self.headers = dict(headers or {})  # e.g. a gateway's Host; `target` is then the gateway's address
        self.first_answer_within_s = first_answer_within_s
        self.expect_failures = expect_failures
        self.test = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]
        self._requests: list[Request] = []
        self._end: dict = {}
        self._lock = threading.Lock()
        self._answered = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._started = 0.0
        self._stop_requested = float("inf")
        self.result: TrafficResult | None = None
        self.number = next(_NUMBERS)

    # -- running
    def _read(self) -> None:
        assert self._proc and self._proc.stdout
        for line in self._proc.stdout:
            rec = json.loads(line)
            if rec.get("event") == "end":
                self._end = rec
            elif "event" not in rec:
                req = Request.from_record(rec)
                with self._lock:
                    self._requests.append(req)
                if req.status:
                    self._answered.set()

    def __enter__(self) -> "TrafficCheck":
        _require_netns(self.netns)
        host, port = self.target or cluster_ip(self.kubeconfig, self.namespace, self.service, self.port)
        self.target = (host, port)
        self._stderr = tempfile.TemporaryFile()
        self._started = time.time()
        self._proc = subprocess.Popen(_agent_argv(self.netns, host, port, self.options, self.headers), cwd=ROOT,
                                      env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"traffic-{self.service}")
        self._reader.start()
        if self.first_answer_within_s and not self._answered.wait(self.first_answer_within_s):
            self.__exit__(None, None, None)
            raise RuntimeError(f"no answer through {host}:{port} ({self.namespace}/{self.service}) within "
                               f"{self.first_answer_within_s:.0f} s: {self.result.summary()}")
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        assert proc and self._reader
        self._stop_requested = time.time()
        try:
            proc.stdin.write("stop\n")
            proc.stdin.close()
        except (BrokenPipeError, ValueError, OSError):
            pass
        try:
            proc.wait(float(self.options["timeout"]) + 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        self._reader.join(10)
        self._stderr.seek(0)
        errors = self._stderr.read().decode("utf-8", "replace").strip()
        self._stderr.close()
        self.result = self.snapshot(errors)
        TALLY.checks[self.number] = CheckRecord(self.test, self.describe_target(), self.result.sent(),
                                                len(self.result.failed()), self.expect_failures)

    def describe_target(self) -> str:
        host, port = self.target or ("?", 0)
        return f"{self.namespace}/{self.service} {host}:{port}"

    def snapshot(self, agent_errors: str = "") -> TrafficResult:
        with self._lock:
            requests = tuple(self._requests)
        ended = self._end.get("t")
        early = ended is not None and ended < self._stop_requested
        counted, warmup = warm(requests) if self.first_answer_within_s else (requests, 0)
        return TrafficResult(counted, self.describe_target(), self._started, time.time(),
                             int(self._end.get("skipped", 0)), agent_errors, early, warmup)

    # -- the tally
    def forbid(self, version: str, after: float = 0.0, before: float = float("inf"), key: str = "deployment"
               ) -> list[Request]:
        """Answers from `version` (by `key`) sent in [after, before): a version that should not serve then.
        They are counted in the session's tally (each request once, however often asked)."""
        result = self.result or self.snapshot()
        hits = [(i, r) for i, r in enumerate(result.requests)
                if r.status and r.version(key) == version and after <= r.t < before]
        TALLY.forbidden.setdefault(self.number, set()).update(i for i, _ in hits)
        return [r for _, r in hits]


def netns_get(netns: str, host: str, port: int, path: str = "/", timeout_s: float = 5.0,
              headers: dict[str, str] | None = None) -> Request:
    """One GET from inside the namespace (e.g. straight to a pod IP), on a new connection; with its body."""
    _require_netns(netns)
    options = {"rate": 10, "duration": timeout_s + 1, "max_requests": 1, "keepalive_share": 0,
               "timeout": timeout_s, "path": path}
    argv = [*_agent_argv(netns, host, port, options, headers), "--ignore-stdin", "--body"]
    proc = subprocess.run(argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=timeout_s + 30, stdin=subprocess.DEVNULL)
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    requests = [Request.from_record(r) for r in records if "event" not in r]
    if not requests:
        raise RuntimeError(f"the agent sent nothing to {host}:{port}{path} (exit {proc.returncode}): "
                           f"{proc.stderr.strip()[-500:]}")
    return requests[0]
